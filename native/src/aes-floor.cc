// The benchmark's physical floor for TLS: what AES-256-GCM costs per MiB in
// Node's own OpenSSL, sealing 16 KiB records in place with a fresh nonce
// each, as TLS 1.3 does (TLS_AES_256_GCM_SHA384, what Node peers negotiate).
// Measured here rather than with node:crypto, whose update() returns a new
// buffer for every record: that allocation, not AES, was most of what it
// timed (bench/README.md). Used by the bench only (bench/roles.ts); `seal`
// lets a test check the timed work against node:crypto's AES-GCM.
#include <node_api.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace {

// Seals `length` bytes in place with the context's key and `nonce`; writes the 16-byte tag.
void Seal(EVP_CIPHER_CTX* ctx, const unsigned char* nonce, unsigned char* data, size_t length, unsigned char* tag) {
  int n = 0;
  EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce);
  EVP_EncryptUpdate(ctx, data, &n, data, static_cast<int>(length));
  EVP_EncryptFinal_ex(ctx, data + n, &n);
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
}

EVP_CIPHER_CTX* Keyed(const unsigned char* key) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr);
  return ctx;
}

// seal(key: 32 bytes, nonce: 12 bytes, data): a new Buffer, data sealed and its tag after it.
napi_value SealCall(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* in[3] = {};
  size_t length[3] = {};
  for (size_t i = 0; i < 3; i++) {
    bool is_buffer = false;
    if (i < argc) napi_is_buffer(env, argv[i], &is_buffer);
    if (is_buffer) napi_get_buffer_info(env, argv[i], &in[i], &length[i]);
  }
  if (!in[0] || length[0] != 32 || !in[1] || length[1] != 12 || argc < 3) {
    napi_throw_type_error(env, nullptr, "seal(key, nonce, data) takes a 32-byte key, a 12-byte nonce and a Buffer");
    return nullptr;
  }
  void* out = nullptr;
  napi_value result;
  napi_create_buffer(env, length[2] + 16, &out, &result);
  auto* bytes = static_cast<unsigned char*>(out);
  if (length[2]) std::copy_n(static_cast<unsigned char*>(in[2]), length[2], bytes);
  EVP_CIPHER_CTX* ctx = Keyed(static_cast<unsigned char*>(in[0]));
  Seal(ctx, static_cast<unsigned char*>(in[1]), bytes, length[2], bytes + length[2]);
  EVP_CIPHER_CTX_free(ctx);
  return result;
}

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
  EVP_CIPHER_CTX* ctx = Keyed(key);
  auto seal_mib = [&] {
    for (size_t at = 0; at < kBytes; at += kRecord) {
      nonce[0]++;
      Seal(ctx, nonce, data.data() + at, kRecord, tag);
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
  napi_create_function(env, "seal", NAPI_AUTO_LENGTH, SealCall, nullptr, &fn);
  napi_set_named_property(env, exports, "seal", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
