from recovery.cli.commands import main

main()
