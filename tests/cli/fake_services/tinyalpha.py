from tinyservice import main

main("tinyalpha")
