# Writes the fatbin's size as a header: cmake -DFATBIN=... -DOUT=... -P fatbin_size.cmake
file(SIZE ${FATBIN} size)
file(WRITE ${OUT} "#define KILN_FAKE_FATBIN_SIZE ${size}u\n")
