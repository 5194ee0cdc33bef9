print("faultline: not yet assembled")
