print("node-sim: not built yet")
