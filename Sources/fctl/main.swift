import ArgumentParser
import FctlCore
print("fctl")
