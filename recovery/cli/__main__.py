from recovery.cli.app import main

main()
