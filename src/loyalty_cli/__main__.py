from loyalty_cli.cli.app import main

main()
