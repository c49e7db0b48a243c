// The benchmark's physical floor for TLS: what AES-256-GCM costs per MiB in
// Node's own OpenSSL, sealing 16 KiB records in place with a fresh nonce
// each, as TLS 1.3 does (TLS_AES_256_GCM_SHA384, what Node peers negotiate).
// Measured here rather than with node:crypto, whose update() returns a new
// buffer for every record: that allocation, not AES, was most of what it
// timed (bench/README.md). Used by the bench only (bench/roles.ts).
#include <node_api.h>
#include <openssl/evp.h>

#include <chrono>
#include <vector>

namespace {

// aesGcmMsPerMiB(measureMs): ms of one core per MiB sealed, over measureMs after a warm-up of a fifth of it.
napi_value AesGcmMsPerMiB(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double measure_ms = 500;
  if (argc >= 1) napi_get_value_double(env, argv[0], &measure_ms);

  constexpr size_t kRecord = 16 * 1024;
  constexpr size_t kBytes = 1024 * 1024;
  std::vector<unsigned char> data(kBytes, 7);
  unsigned char key[32] = {1};
  unsigned char nonce[12] = {2};
  unsigned char tag[16];
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr);
  auto seal_mib = [&] {
    for (size_t at = 0; at < kBytes; at += kRecord) {
      nonce[0]++;
      int n = 0;
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce);
      EVP_EncryptUpdate(ctx, data.data() + at, &n, data.data() + at, static_cast<int>(kRecord));
      EVP_EncryptFinal_ex(ctx, tag, &n);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag);
    }
  };
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  for (auto t = Clock::now(); ms_since(t) < measure_ms / 5;) seal_mib();
  size_t mib = 0;
  auto t0 = Clock::now();
  while (ms_since(t0) < measure_ms) {
    seal_mib();
    mib++;
  }
  double per_mib = ms_since(t0) / static_cast<double>(mib);
  EVP_CIPHER_CTX_free(ctx);
  napi_value result;
  napi_create_double(env, per_mib, &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "aesGcmMsPerMiB", NAPI_AUTO_LENGTH, AesGcmMsPerMiB, nullptr, &fn);
  napi_set_named_property(env, exports, "aesGcmMsPerMiB", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
