from tinyservice import main

main("tinygate")
