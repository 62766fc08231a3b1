from coffre.cli import main

main()
