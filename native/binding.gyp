{
  "targets": [
    {
      "target_name": "lclstream_native",
      "sources": ["src/stream-call.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "lclstream_shared_memory",
      "sources": ["src/shared-memory.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "lclstream_aes_floor",
      "sources": ["src/aes-floor.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
