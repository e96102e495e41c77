@_exported import struct RaftSimulator.SimRandom
