// Prints what the worker's detect_devices() finds on this machine (scripts/gpu-check/run.sh).
#include <cstdio>

#include "worker/devices.h"

int main() {
  for (const std::string& device : gridexp::detect_devices()) std::printf("%s\n", device.c_str());
  return 0;
}
