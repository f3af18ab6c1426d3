"""The points engine: scoring, tiers, expiry, bonuses, vouchers and `loyalty run`.

Pure functions over rows live in scoring.py, tiers.py, dates.py; run.py
orchestrates a run and posts through ledger.py; statement.py reads.
"""
