// Header-only target: SwiftPM needs one source file. See include/fuzzer_driver.h.
#include "fuzzer_driver.h"
