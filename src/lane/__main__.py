from lane.cli.app import main

main()
