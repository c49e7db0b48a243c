// mapShared(fd, length): an ArrayBuffer over the first `length` bytes of the file `fd`, mapped
// shared, so that another process mapping the same file sees the same bytes. A psana reader
// process writes its frames there and the producer reads them in place: no pipe, whose two
// kernel copies and reads cost the producer a quarter of a core at 300 MB/s. The mapping
// outlives `fd` and is undone when the ArrayBuffer is collected.
#include <node_api.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

void Unmap(napi_env, void* data, void* length) { munmap(data, reinterpret_cast<size_t>(length)); }

napi_value MapShared(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t fd = -1;
  int64_t length = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &length) != napi_ok ||
      fd < 0 || length <= 0) {
    napi_throw_type_error(env, nullptr, "mapShared(fd, length): give an open file descriptor and a positive length");
    return nullptr;
  }
  void* data = mmap(nullptr, size_t(length), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    napi_throw_error(env, "ERR_LCLSTREAM_MAP_SHARED", (std::string("mapShared: ") + strerror(errno)).c_str());
    return nullptr;
  }
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, data, size_t(length), Unmap, reinterpret_cast<void*>(size_t(length)), &buffer) != napi_ok) {
    munmap(data, size_t(length));
    napi_throw_error(env, "ERR_LCLSTREAM_MAP_SHARED", "mapShared: V8 refused an ArrayBuffer over the mapping");
    return nullptr;
  }
  return buffer;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {{"mapShared", nullptr, MapShared, nullptr, nullptr, nullptr, napi_enumerable, nullptr}};
  napi_define_properties(env, exports, 1, methods);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
