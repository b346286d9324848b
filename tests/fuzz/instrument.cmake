# Included by the root CMakeLists.txt before cpp/ when GRIDEXP_FUZZ is ON: every library the
# fuzz targets link is compiled with libFuzzer's coverage instrumentation and with
# AddressSanitizer + UndefinedBehaviorSanitizer. The targets themselves add the fuzzer runtime
# (tests/fuzz/CMakeLists.txt). Only clang has libFuzzer, so a fuzz tree is a clang tree of its
# own (scripts/run-fuzz.sh); the normal gcc build never sees these flags.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "GRIDEXP_FUZZ needs clang (libFuzzer): configure with "
                      "-DCMAKE_CXX_COMPILER=clang++, or run scripts/run-fuzz.sh")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                    -fno-sanitize-recover=all)
add_link_options(-fsanitize=address,undefined)
