// A gRPC call of the data path made on a thread of its own: TLS 1.3 with the
// client's certificate (Node's own OpenSSL), HTTP/2 (Node's own nghttp2), and
// each response message gathered straight from the decrypted records into
// memory of its own, handed to JavaScript whole. A streamed request (Publish)
// is sent from the memory JavaScript hands over, framed here. It moves bytes
// only: the call's meaning (status, errors, deadlines, retries) stays in
// TypeScript (services/common/native-stream.ts), which falls back to Node's
// HTTP/2 when this module is not built.
//
// The same call serves the other end (serve): a server hands over a connection
// whose client offered the ALPN marker below, which only this module's client
// offers (it makes one call per connection). The thread completes the TLS
// handshake (the client's certificate verified against the server's CAs),
// reads the one call's request messages and sends the response JavaScript
// writes (services/common/native-server.ts). A connection without the marker
// is declined untouched, and Node's HTTP/2 server takes it.
//
// Why: Node's TLS hands every 16 KiB record to JavaScript as a chunk of its
// own, and a consumer then copies the chunks of each message together; here
// the records never reach JavaScript, and the copy is the one OpenSSL makes.
// Sending, Node copies each message three times on its way to the socket
// (joining HTTP/2's frames, into OpenSSL's record, out of it into Node's
// buffer); here twice (framing, and the record).
#include <node_api.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "nghttp2-api.h"

namespace {

// ---------------------------------------------------------------------------
// Message memory, reused once JavaScript lets a message go: fresh memory for
// every large message costs the kernel's page faults and zeroing (0.7 ms of
// CPU a MiB here, more than receiving it). Memory given back stays ready for
// later messages until it has been unused for kDecay, as allocators keep their
// freed pages for a while (jemalloc: 10 s), so that a buffer taking in a run
// after the last one does so into memory it already has.

class MemoryPool {
 public:
  // Messages this large or larger are pooled, their memory rounded up to whole pages.
  static constexpr size_t kPooledFrom = 64 * 1024;
  static constexpr size_t kPage = 4096;
  // What a process keeps at most; what it keeps is also at most what it once held at the same time.
  static constexpr size_t kMaxPooledBytes = size_t(2) << 30;
  static constexpr std::chrono::seconds kDecay{10};

  // Memory for `size` bytes; `capacity` is what it really holds.
  void* Take(size_t size, size_t* capacity) {
    // A small message gets just its size: a caller may keep thousands of them.
    if (size < kPooledFrom) {
      *capacity = std::max<size_t>(size, 1);
      return malloc(*capacity);
    }
    size_t want = RoundUp(size);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.lower_bound(want);
      if (it != free_.end() && it->first <= 2 * want) {
        void* memory = it->second.memory;
        *capacity = it->first;
        pooled_ -= it->first;
        free_.erase(it);
        return memory;
      }
    }
    *capacity = want;
    return malloc(want);
  }

  void Give(void* memory, size_t capacity) {
    if (capacity < kPooledFrom) {
      free(memory);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (pooled_ + capacity <= kMaxPooledBytes) {
        free_.emplace(capacity, Free{memory, Clock::now()});
        pooled_ += capacity;
        if (!decaying_) {
          decaying_ = true;
          std::thread([this] { Decay(); }).detach();
        }
        return;
      }
    }
    free(memory);
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Free {
    void* memory;
    Clock::time_point given;
  };
  static size_t RoundUp(size_t n) { return (n + kPage - 1) / kPage * kPage; }

  // Gives memory unused for kDecay back to the system, every second, on a thread of its own.
  void Decay() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::vector<void*> old;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto cutoff = Clock::now() - kDecay;
        for (auto it = free_.begin(); it != free_.end();) {
          if (it->second.given > cutoff) {
            ++it;
            continue;
          }
          old.push_back(it->second.memory);
          pooled_ -= it->first;
          it = free_.erase(it);
        }
      }
      for (void* memory : old) free(memory);
    }
  }

  std::mutex mutex_;
  std::multimap<size_t, Free> free_;  // by capacity
  size_t pooled_ = 0;
  bool decaying_ = false;
};

// Never destroyed: a call's thread may still use it while the process exits.
MemoryPool& pool = *new MemoryPool;

void FreeMessage(napi_env, void* data, void* hint) { pool.Give(data, reinterpret_cast<size_t>(hint)); }

// ---------------------------------------------------------------------------
// What the call's thread tells JavaScript, in order.

struct Event {
  // kAccepted/kDeclined: a served connection is (not) this module's to serve; kPeer: the client's
  // certificate (DER, in `message`); kEnd: the request ended.
  enum Kind { kHeaders, kMessage, kTrailers, kClosed, kError, kCopied, kFinished, kAccepted, kDeclined, kPeer, kEnd } kind;
  std::vector<std::pair<std::string, std::string>> headers;
  bool end_stream = false;
  void* data = nullptr;  // kMessage: memory JavaScript has no ArrayBuffer over yet, or null
  size_t length = 0;  // kCopied: the request bytes copied out of JavaScript's memory so far
  size_t capacity = 0;
  int slot = -1;  // kMessage: the borrowed slot it is in, or -1 (memory of its own)
  uint32_t error_code = 0;
  std::string reason;   // kError: "connect", "tls", "refused", "http2", "too-large", "compressed", "closed", "truncated"
  std::string message;  // kError
};

struct Options {
  // Serving: the accepted connection (this module's own copy of the descriptor), not connecting.
  bool server = false;
  int fd = -1;
  int handshake_timeout_ms = 10000;
  std::string host;
  int port = 0;
  std::string servername;
  std::string authority;
  std::string path;
  std::string ca_pem, cert_pem, key_pem;
  std::string crl_pem;  // serving: revoked client certificates are refused in the handshake, as Node's server does
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<uint8_t> body;
  // The request is streamed: JavaScript hands its bytes over with Write and ends it there.
  bool streamed = false;
  int32_t stream_window = 8 * 1024 * 1024;
  int32_t connection_window = 16 * 1024 * 1024;
  size_t max_message_bytes = 64 * 1024 * 1024;
  // The caller is done with each message before it takes the next: messages go into a few
  // slots of memory reused in turn, with no new ArrayBuffer (no new external memory for V8
  // to collect) a message.
  bool borrowed = false;
  // As the TS client's sessions: a PING after this long without a byte from the server, and the
  // call fails when that goes unanswered (a server or network that went silent).
  int keepalive_interval_ms = 30000;
  int keepalive_timeout_ms = 15000;
};

// Request bytes in JavaScript's memory.
struct Chunk {
  const uint8_t* data;
  size_t length;
};

// What this module's client offers beside h2, so a server knows it may serve the connection here.
constexpr char kAlpnMarker[] = "lclstream-native";

// 1 when a TLS ClientHello offers kAlpnMarker, 0 when it does not (or is no ClientHello, or spans
// records), -1 when more bytes are needed to say.
int OffersMarker(const uint8_t* data, size_t n) {
  size_t at = 0;
  auto need = [&](size_t k) { return at <= n && n - at >= k; };
  auto u16 = [&]() { at += 2; return (size_t(data[at - 2]) << 8) | data[at - 1]; };
  if (!need(5)) return -1;
  if (data[0] != 0x16) return 0;  // not a handshake record
  at = 3;
  size_t record = u16();
  if (!need(record)) return record > 16 * 1024 ? 0 : -1;
  n = at + record;  // read no further than the first record
  if (!need(4) || data[at] != 1) return 0;  // not a ClientHello
  size_t hello = (size_t(data[at + 1]) << 16) | (size_t(data[at + 2]) << 8) | data[at + 3];
  at += 4;
  if (!need(hello)) return 0;  // spans records: not this module's client
  at += 2 + 32;  // version, random
  if (!need(1)) return 0;
  at += 1 + data[at];  // session id
  if (!need(2)) return 0;
  size_t suites = u16();
  if (!need(suites)) return 0;
  at += suites;
  if (!need(1)) return 0;
  at += 1 + data[at];  // compression methods
  if (!need(2)) return 0;
  size_t extensions = u16();
  if (!need(extensions)) return 0;
  n = at + extensions;
  while (need(4)) {
    size_t type = u16(), length = u16();
    if (!need(length)) return 0;
    if (type == 16) {  // ALPN: a 2-byte list length, then names of a 1-byte length each
      size_t end = at + length;
      at += 2;
      while (at < end) {
        size_t name = data[at++];
        if (name > end - at) return 0;
        if (name == sizeof kAlpnMarker - 1 && memcmp(data + at, kAlpnMarker, name) == 0) return 1;
        at += name;
      }
      return 0;
    }
    at += length;
  }
  return 0;
}

// How many bytes of frames are gathered before OpenSSL encrypts and sends them.
constexpr size_t kSendBatchBytes = 256 * 1024;
// The most plaintext a TLS record carries.
constexpr size_t kRecordBytes = 16 * 1024;
// The largest DATA frame sent, and received (advertised): between two of this module's ends a
// large message crosses in a few frames, its bytes read by OpenSSL from where JavaScript has them.
constexpr size_t kFrameBytes = 1024 * 1024;
// A chunk at least this large, in a frame as large, is not copied before OpenSSL reads it.
constexpr size_t kPieceBytes = 64 * 1024;
// What OpenSSL reads from the socket at most at once: several records.
constexpr size_t kReadAheadBytes = 128 * 1024;
// What OpenSSL's records are gathered into before they are written to the socket.
constexpr size_t kWriteBufferBytes = 256 * 1024;

// Header fields as nghttp2 takes them (it copies them when a frame is submitted).
std::vector<nghttp2_nv> NameValues(const std::vector<std::pair<std::string, std::string>>& list) {
  std::vector<nghttp2_nv> nva;
  nva.reserve(list.size());
  for (const auto& h : list)
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(h.first.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(h.second.data())),
                   h.first.size(), h.second.size(), 0});
  return nva;
}

// Slots for borrowed messages: the one the caller holds, two queued, one being read.
constexpr int kSlots = 4;

struct Slot {
  uint8_t* memory = nullptr;
  size_t capacity = 0;
  bool announced = false;  // JavaScript holds an ArrayBuffer over this memory (which then frees it)
  std::atomic<bool> free{true};
};

class Call {
 public:
  explicit Call(Options options) : options_(std::move(options)), preface_left_(options_.server ? 24 : 0) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~Call() {
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  napi_threadsafe_function tsfn = nullptr;

  void Start(std::shared_ptr<Call> self) {
    std::thread([self]() { self->Run(); }).detach();
  }

  // From JavaScript.
  void Taken() {
    // The thread waits on this only when two messages were waiting (see Exchange): no wake-up a message.
    if (untaken_.fetch_sub(1) == 2) Wake();
  }
  void Cancel() {
    cancel_.store(true);
    Wake();
  }
  // The caller is done with the borrowed message in `slot`.
  void Released(int slot) {
    if (slot >= 0 && slot < kSlots) slots_[slot].free.store(true);
  }

  // Request bytes to send (a streamed request), in memory JavaScript keeps unchanged until the
  // bytes copied pass them; `end` ends the request. Returns the bytes copied so far.
  size_t Write(std::vector<Chunk> chunks, bool end) {
    size_t copied;
    {
      std::lock_guard<std::mutex> lock(body_mutex_);
      for (const Chunk& c : chunks) {
        if (c.length == 0) continue;
        body_chunks_.push_back(c);
        body_queued_ += c.length;
      }
      body_end_ = body_end_ || end;
      copied = body_copied_;
    }
    Wake();
    return copied;
  }
  // Serving: the response's headers, sent once the thread sees them; `end_stream` makes them the
  // whole response (Trailers-Only).
  void Respond(std::vector<std::pair<std::string, std::string>> headers, bool end_stream) {
    {
      std::lock_guard<std::mutex> lock(body_mutex_);
      response_headers_ = std::move(headers);
      response_end_ = end_stream;
      response_ready_ = true;
    }
    Wake();
  }
  // Serving: the response ends with these trailers, after the bytes written before.
  void Finish(std::vector<std::pair<std::string, std::string>> trailers) {
    {
      std::lock_guard<std::mutex> lock(body_mutex_);
      trailers_ = std::move(trailers);
      body_end_ = true;
    }
    Wake();
  }

  // True when `total` request bytes are copied already; otherwise a kCopied event says when they are.
  bool AwaitCopied(size_t total) {
    std::lock_guard<std::mutex> lock(body_mutex_);
    if (body_copied_ >= total) return true;
    copied_target_ = total;
    return false;
  }

  // Events queued since JavaScript last took them.
  std::vector<Event> TakeEvents() {
    std::lock_guard<std::mutex> lock(events_mutex_);
    std::vector<Event> out;
    out.swap(events_);
    return out;
  }

 private:
  void Wake() {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof one);
    (void)ignored;
  }

  void Emit(Event event) {
    bool first;
    {
      std::lock_guard<std::mutex> lock(events_mutex_);
      first = events_.empty();
      events_.push_back(std::move(event));
    }
    if (first) napi_call_threadsafe_function(tsfn, nullptr, napi_tsfn_blocking);
  }

  void Fail(const char* reason, std::string message) {
    Event e{Event::kError};
    e.reason = reason;
    e.message = std::move(message);
    Emit(std::move(e));
  }

  static std::string OpenSslErrors(const char* what) {
    std::string out = what;
    unsigned long code;
    char text[256];
    while ((code = ERR_get_error()) != 0) {
      ERR_error_string_n(code, text, sizeof text);
      out += ": ";
      out += text;
    }
    return out;
  }

  void Run() {
    pthread_setname_np(pthread_self(), "lclstream-call");  // as `top -H` and perf show it
    if (options_.server ? Classify() && Accept() : Connect() && Handshake()) Exchange();
    Cleanup();
    // Nothing of JavaScript's memory is read after this.
    Emit(Event{Event::kFinished});
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }

  // Waits for the socket (events) or a wake-up from JavaScript; false when cancelled.
  bool Wait(short events, int timeout_ms = -1) {
    pollfd fds[2] = {{fd_, events, 0}, {wake_fd_, POLLIN, 0}};
    int n;
    do n = poll(fds, 2, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      ssize_t ignored = read(wake_fd_, &count, sizeof count);
      (void)ignored;
    }
    return !cancel_.load();
  }

  bool Connect() {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    std::string port = std::to_string(options_.port);
    int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
      Fail("connect", "cannot resolve " + options_.host + ": " + gai_strerror(rc));
      return false;
    }
    std::string last = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
      fd_ = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd_ < 0) continue;
      if (connect(fd_, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
        for (;;) {
          if (!Wait(POLLOUT)) {
            freeaddrinfo(found);
            return false;
          }
          pollfd p{fd_, POLLOUT, 0};
          if (poll(&p, 1, 0) > 0) break;
        }
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error == 0) {
          int one = 1;
          setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          freeaddrinfo(found);
          return true;
        }
        last = strerror(error);
      } else {
        last = strerror(errno);
      }
      close(fd_);
      fd_ = -1;
    }
    freeaddrinfo(found);
    Fail("connect", "cannot connect to " + options_.host + ":" + port + ": " + last);
    return false;
  }

  // Serving: waits for the client's first bytes, and says (kAccepted or kDeclined) whether they
  // offer the marker. Only peeks: a declined connection is left as it came, for Node to take.
  bool Classify() {
    fd_ = options_.fd;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.handshake_timeout_ms);
    uint8_t hello[16 * 1024 + 5];
    int verdict = 0;
    for (;;) {
      ssize_t n = recv(fd_, hello, sizeof hello, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) verdict = OffersMarker(hello, static_cast<size_t>(n));
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) verdict = 0;
      else verdict = -1;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (verdict >= 0 || left <= 0 || cancel_.load()) break;
      // Nothing yet: wait for bytes. Part of a hello: what was peeked keeps the socket readable, so sleep a little.
      if (n <= 0) Wait(POLLIN, static_cast<int>(left));
      else usleep(1000);
    }
    taken_ = verdict == 1;
    Emit(Event{taken_ ? Event::kAccepted : Event::kDeclined});
    return taken_;
  }

  static int SelectAlpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in, unsigned int in_length, void*) {
    for (unsigned int at = 0; at < in_length;) {
      unsigned int length = in[at];
      if (at + 1 + length > in_length) break;
      if (length == 2 && memcmp(in + at + 1, "h2", 2) == 0) {
        *out = in + at + 1;
        *out_length = 2;
        return SSL_TLSEXT_ERR_OK;
      }
      at += 1 + length;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }

  // Serving: the TLS handshake, with a certificate the server's CAs signed required of the client;
  // then the client's certificate to JavaScript (kPeer), which decides what it may do.
  bool Accept() {
    if (!NewSsl()) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.handshake_timeout_ms);
    for (;;) {
      ERR_clear_error();
      int rc = SSL_accept(ssl_);
      if (rc == 1) break;
      int error = SSL_get_error(ssl_, rc);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if ((error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) && left > 0) {
        if (!Wait(error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, static_cast<int>(left))) return false;
        continue;
      }
      Fail("tls", left <= 0 ? "the client did not finish the TLS handshake in " + std::to_string(options_.handshake_timeout_ms) + " ms"
                            : OpenSslErrors("the TLS handshake failed"));
      return false;
    }
    X509* peer = SSL_get1_peer_certificate(ssl_);
    Event e{Event::kPeer};
    int length = peer ? i2d_X509(peer, nullptr) : 0;
    if (length > 0) {
      e.message.resize(static_cast<size_t>(length));
      unsigned char* at = reinterpret_cast<unsigned char*>(&e.message[0]);
      i2d_X509(peer, &at);
    }
    X509_free(peer);
    Emit(std::move(e));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
  }

  bool LoadCredentials() {
    ctx_ = SSL_CTX_new(options_.server ? TLS_server_method() : TLS_client_method());
    if (!ctx_) return false;
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Several records a read: without read-ahead OpenSSL reads each 16 KiB record's header and then its
    // body, two system calls a record. Receive reads until OpenSSL wants the socket, so nothing read
    // ahead waits unseen while the thread polls; a client's first frames that a server's handshake
    // read ahead with its last message are read when the client acknowledges the server's SETTINGS,
    // which it does at once.
    SSL_CTX_set_read_ahead(ctx_, 1);
    SSL_CTX_set_default_read_buffer_len(ctx_, kReadAheadBytes);
    if (options_.server) {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      SSL_CTX_set_alpn_select_cb(ctx_, SelectAlpn, nullptr);
      // One call a connection: a session ticket would only cost the handshake a message.
      SSL_CTX_set_num_tickets(ctx_, 0);
    } else {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      static const unsigned char alpn[] = {2, 'h', '2', sizeof kAlpnMarker - 1, 'l', 'c', 'l', 's', 't', 'r', 'e', 'a', 'm', '-', 'n', 'a', 't', 'i', 'v', 'e'};
      static_assert(sizeof kAlpnMarker - 1 == 16, "the marker in the ALPN list");
      SSL_CTX_set_alpn_protos(ctx_, alpn, sizeof alpn);
    }

    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    BIO* bio = BIO_new_mem_buf(options_.ca_pem.data(), static_cast<int>(options_.ca_pem.size()));
    int cas = 0;
    while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, ca);
      X509_free(ca);
      cas++;
    }
    BIO_free(bio);
    ERR_clear_error();  // the end of the PEM text reads as an error
    if (cas == 0) return false;
    if (!options_.crl_pem.empty()) {
      bio = BIO_new_mem_buf(options_.crl_pem.data(), static_cast<int>(options_.crl_pem.size()));
      while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) {
        X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
      }
      BIO_free(bio);
      ERR_clear_error();
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);  // (Node's flags for a `crl`)
    }

    if (!options_.cert_pem.empty()) {
      bio = BIO_new_mem_buf(options_.cert_pem.data(), static_cast<int>(options_.cert_pem.size()));
      X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      bool ok = leaf && SSL_CTX_use_certificate(ctx_, leaf) == 1;
      X509_free(leaf);
      while (ok) {
        X509* chain = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        if (!chain) break;
        SSL_CTX_add0_chain_cert(ctx_, chain);
      }
      BIO_free(bio);
      ERR_clear_error();
      if (!ok) return false;
      bio = BIO_new_mem_buf(options_.key_pem.data(), static_cast<int>(options_.key_pem.size()));
      EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
      ok = key && SSL_CTX_use_PrivateKey(ctx_, key) == 1 && SSL_CTX_check_private_key(ctx_) == 1;
      EVP_PKEY_free(key);
      if (!ok) return false;
    }
    return true;
  }

  // The connection's TLS, with this end's certificate, key and CAs; false (saying why) when they do not load.
  bool NewSsl() {
    ERR_clear_error();
    if (!LoadCredentials()) {
      Fail("tls", OpenSslErrors(options_.server ? "the server's certificate, key or CA could not be loaded"
                                                : "the client's certificate, key or CA could not be loaded"));
      return false;
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    // Records go to the socket kWriteBufferBytes at a time, through OpenSSL's buffering BIO: written by
    // themselves, each 16 KiB record is a system call, and the kernel's cost a call made sending 16 KiB
    // writes 0.65-0.74 ms of CPU a MiB against 0.43-0.47 for 256 KiB ones (corked, loopback). Send()
    // flushes what is left once nghttp2 has nothing more; OpenSSL flushes its handshake and alerts.
    BIO* socket = SSL_get_rbio(ssl_);
    BIO* buffered = BIO_new(BIO_f_buffer());
    if (!buffered || BIO_set_write_buffer_size(buffered, kWriteBufferBytes) != 1 || BIO_up_ref(socket) != 1) {
      BIO_free(buffered);
      Fail("tls", "out of memory for the connection's write buffer");
      return false;
    }
    SSL_set0_wbio(ssl_, BIO_push(buffered, socket));
    return true;
  }

  bool Handshake() {
    if (!NewSsl()) return false;
    const std::string& name = options_.servername;
    in6_addr ip;
    bool is_ip = inet_pton(AF_INET, name.c_str(), &ip) == 1 || inet_pton(AF_INET6, name.c_str(), &ip) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, name.c_str());
      SSL_set1_host(ssl_, name.c_str());
    }
    for (;;) {
      ERR_clear_error();
      int rc = SSL_connect(ssl_);
      if (rc == 1) break;
      int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        if (!Wait(error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)) return false;
        continue;
      }
      long verify = SSL_get_verify_result(ssl_);
      std::string message = OpenSslErrors("the TLS handshake failed");
      if (verify != X509_V_OK) message += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      Fail("tls", message);
      return false;
    }
    const unsigned char* protocol = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl_, &protocol, &length);
    if (length != 2 || memcmp(protocol, "h2", 2) != 0) {
      Fail("tls", "the server did not agree to HTTP/2 (ALPN h2)");
      return false;
    }
    return true;
  }

  // --- HTTP/2 -------------------------------------------------------------

  static Call* Of(void* user_data) { return static_cast<Call*>(user_data); }

  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source*,
                          void* user_data) {
    Call* c = Of(user_data);
    size_t n = std::min(length, c->options_.body.size() - c->body_sent_);
    memcpy(buf, c->options_.body.data() + c->body_sent_, n);
    c->body_sent_ += n;
    if (c->body_sent_ == c->options_.body.size()) *flags |= kDataFlagEof;
    return static_cast<ssize_t>(n);
  }

  // A streamed request: what JavaScript has handed over, sent from its memory by SendData.
  static ssize_t ReadStreamedBody(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags, nghttp2_data_source*,
                                  void* user_data) {
    Call* c = Of(user_data);
    std::lock_guard<std::mutex> lock(c->body_mutex_);
    size_t available = c->body_queued_ - c->body_promised_;
    if (available == 0 && !c->body_end_) {
      c->body_deferred_ = true;  // resumed when JavaScript writes
      return kErrDeferred;
    }
    size_t n = std::min(length, available);
    c->body_promised_ += n;
    *flags |= kDataFlagNoCopy;
    if (c->body_end_ && n == available) {
      *flags |= kDataFlagEof;
      if (c->options_.server) {
        // A response ends with its trailers (the status), which end the stream.
        *flags |= kDataFlagNoEndStream;
        std::vector<nghttp2_nv> nva = NameValues(c->trailers_);
        nghttp2_submit_trailer(c->session_, c->stream_id_, nva.data(), nva.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  // Frames `length` promised request bytes after their frame header. A large frame (between two
  // of this module's ends, which allow them) leaves its large chunks in JavaScript's memory, for
  // OpenSSL to read from there (a piece); the rest is copied into out_, a few records at a time
  // (the copy is still in cache when OpenSSL encrypts it).
  static int SendData(nghttp2_session*, nghttp2_frame*, const uint8_t* framehd, size_t length, nghttp2_data_source*, void* user_data) {
    Call* c = Of(user_data);
    if (c->Unsent() >= kSendBatchBytes) return kErrWouldBlock;
    c->out_.insert(c->out_.end(), framehd, framehd + 9);
    bool large = length >= kPieceBytes;
    {
      std::lock_guard<std::mutex> lock(c->body_mutex_);
      while (length > 0) {
        Chunk& head = c->body_chunks_.front();
        const uint8_t* data = head.data + c->head_offset_;
        size_t n = std::min(length, head.length - c->head_offset_);
        if (large && n >= kPieceBytes) {
          c->pieces_.push_back(Piece{c->out_.size(), data, n, c->body_taken_});
          c->piece_bytes_ += n;
        } else {
          c->out_.insert(c->out_.end(), data, data + n);
        }
        c->head_offset_ += n;
        c->body_taken_ += n;
        length -= n;
        if (c->head_offset_ == head.length) {
          c->body_chunks_.pop_front();
          c->head_offset_ = 0;
        }
      }
    }
    c->BodyCopied();
    return 0;
  }

  // Sends DATA frames as large as the peer allows, up to kFrameBytes (nghttp2 keeps them within the windows).
  static ssize_t FrameLength(nghttp2_session*, uint8_t, int32_t, int32_t, int32_t, uint32_t remote_max_frame_size, void*) {
    return static_cast<ssize_t>(std::min<size_t>(remote_max_frame_size, kFrameBytes));
  }

  // The request bytes JavaScript may let go: all taken, up to the first piece OpenSSL has not read yet.
  void BodyCopied() {
    bool notify = false;
    size_t copied;
    {
      std::lock_guard<std::mutex> lock(body_mutex_);
      body_copied_ = pieces_.empty() ? body_taken_ : pieces_.front().body_offset;
      if (copied_target_ != 0 && body_copied_ >= copied_target_) {
        copied_target_ = 0;
        notify = true;
      }
      copied = body_copied_;
    }
    if (notify) {
      Event e{Event::kCopied};
      e.length = copied;
      Emit(std::move(e));
    }
  }

  size_t Unsent() const { return out_.size() - out_offset_ + piece_bytes_; }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t, void* user_data) {
    Call* c = Of(user_data);
    if (frame->hd.stream_id == c->stream_id_)
      c->headers_.emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                               std::string(reinterpret_cast<const char*>(value), valuelen));
    return 0;
  }

  // Serving: the first stream is the call; a client that opens another is refused it.
  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Call* c = Of(user_data);
    if (frame->hd.type != kFrameHeaders) return 0;
    if (c->stream_id_ < 0) c->stream_id_ = frame->hd.stream_id;
    else if (frame->hd.stream_id != c->stream_id_) nghttp2_submit_rst_stream(session, 0, frame->hd.stream_id, kErrorRefusedStream);
    return 0;
  }

  // Serving: once the response has ended the stream on this side, a request still open is reset
  // with NO_ERROR (as gRPC servers do): the client need send no more of it.
  static int OnFrameSent(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Call* c = Of(user_data);
    if (frame->hd.stream_id == c->stream_id_ && (frame->hd.flags & kFlagEndStream) && !c->request_ended_ && !c->stream_closed_)
      nghttp2_submit_rst_stream(session, 0, c->stream_id_, kErrorNone);
    return 0;
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Call* c = Of(user_data);
    c->answered_ = true;
    if (frame->hd.stream_id != c->stream_id_) return 0;
    if (c->options_.server && (frame->hd.flags & kFlagEndStream)) c->request_ended_ = true;
    if (frame->hd.type == kFrameData && c->request_ended_ && c->options_.server) {
      if (c->failed_) return 0;
      if (c->message_ || c->prefix_used_ > 0) {
        c->failed_ = true;
        c->Fail("truncated", "the request stream ended inside a message");
      } else {
        c->Emit(Event{Event::kEnd});
      }
      return 0;
    }
    if (frame->hd.type != kFrameHeaders) return 0;
    Event e{c->got_headers_ ? Event::kTrailers : Event::kHeaders};
    e.headers.swap(c->headers_);
    e.end_stream = (frame->hd.flags & kFlagEndStream) != 0;
    c->got_headers_ = true;
    c->Emit(std::move(e));
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* user_data) {
    Call* c = Of(user_data);
    if (stream_id != c->stream_id_) return 0;
    c->unconsumed_ += len;
    // After a refused message the rest of the stream is not messages: it is dropped (a client's until
    // its reset goes out; a server's until its status does).
    if (c->failed_) return 0;
    return c->Frame(data, len) ? 0 : kErrCallbackFailure;
  }

  static int OnClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user_data) {
    Call* c = Of(user_data);
    if (stream_id != c->stream_id_) return 0;
    c->stream_closed_ = true;
    if (c->failed_) return 0;
    Event e{Event::kClosed};
    e.error_code = error_code;
    c->Emit(std::move(e));
    return 0;
  }

  // Splits the stream's bytes into gRPC messages (a 5-byte prefix, then the message).
  bool Frame(const uint8_t* data, size_t len) {
    while (len > 0) {
      if (!message_) {
        size_t n = std::min(len, sizeof prefix_ - prefix_used_);
        memcpy(prefix_ + prefix_used_, data, n);
        prefix_used_ += n;
        data += n;
        len -= n;
        if (prefix_used_ < sizeof prefix_) return true;
        prefix_used_ = 0;
        uint32_t length = (uint32_t(prefix_[1]) << 24) | (uint32_t(prefix_[2]) << 16) | (uint32_t(prefix_[3]) << 8) | prefix_[4];
        if (prefix_[0] & 1) return Refuse("compressed", "the server sent a compressed message this client did not ask for", 0);
        if (length > options_.max_message_bytes) return Refuse("too-large", "", length);
        message_length_ = length;
        message_used_ = 0;
        message_ = StartMessage(length);
        if (!message_) return Refuse("http2", "out of memory for a message", length);
      } else {
        size_t n = std::min(len, message_length_ - message_used_);
        if (data != message_ + message_used_) memcpy(message_ + message_used_, data, n);  // else read there (Receive)
        message_used_ += n;
        data += n;
        len -= n;
      }
      if (message_ && message_used_ == message_length_) {
        Event e{Event::kMessage};
        e.length = message_length_;
        e.slot = message_slot_;
        if (message_slot_ < 0 || !slots_[message_slot_].announced) {
          e.data = message_;
          e.capacity = message_capacity_;
          if (message_slot_ >= 0) slots_[message_slot_].announced = true;
        }
        message_ = nullptr;
        untaken_.fetch_add(1);
        Emit(std::move(e));
      }
    }
    return true;
  }

  // Memory for the next message: a free borrowed slot (grown if need be), else memory of its own.
  uint8_t* StartMessage(size_t length) {
    message_slot_ = -1;
    for (int i = 0; options_.borrowed && i < kSlots; i++) {
      Slot& slot = slots_[i];
      if (!slot.free.load()) continue;
      if (slot.capacity < length) {
        // Memory JavaScript holds an ArrayBuffer over is freed with it; other memory goes back now.
        if (slot.memory && !slot.announced) pool.Give(slot.memory, slot.capacity);
        slot.memory = static_cast<uint8_t*>(pool.Take(length, &slot.capacity));
        slot.announced = false;
        if (!slot.memory) return nullptr;
      }
      slot.free.store(false);
      message_slot_ = i;
      message_capacity_ = slot.capacity;
      return slot.memory;
    }
    return static_cast<uint8_t*>(pool.Take(length, &message_capacity_));
  }

  // Serving: the response's headers, once JavaScript has given them.
  void SubmitResponse() {
    std::vector<std::pair<std::string, std::string>> headers;
    bool end;
    {
      std::lock_guard<std::mutex> lock(body_mutex_);
      if (!response_ready_) return;
      headers = response_headers_;
      end = response_end_;
    }
    response_submitted_ = true;
    std::vector<nghttp2_nv> nva = NameValues(headers);
    nghttp2_data_provider body{};
    body.read_callback = ReadStreamedBody;
    // (Fails only when the client has reset the stream already, which closes the call anyway.)
    nghttp2_submit_response(session_, stream_id_, nva.data(), nva.size(), end ? nullptr : &body);
  }

  bool Refuse(const char* reason, std::string message, size_t length) {
    Event e{Event::kError};
    e.reason = reason;
    e.message = std::move(message);
    e.length = length;
    failed_ = true;
    Emit(std::move(e));
    // A server answers with a status (JavaScript sends it); a client resets the stream.
    if (!options_.server) nghttp2_submit_rst_stream(session_, 0, stream_id_, kErrorCancel);
    return true;  // the session goes on until that is sent
  }

  // Writes what nghttp2 has to send; false on a broken connection. `blocked` when the socket is full.
  bool Send(bool* blocked) {
    bool ok = SendAll(blocked);
    if (ok && !*blocked && BIO_flush(SSL_get_wbio(ssl_)) <= 0) {
      if (BIO_should_retry(SSL_get_wbio(ssl_))) {
        *blocked = true;
      } else {
        Fail("closed", "the connection broke while sending");
        ok = false;
      }
    }
    if (corked_) {
      // What is written goes out now, the last partial segment too.
      int zero = 0;
      setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
      corked_ = false;
    }
    return ok;
  }

  bool SendAll(bool* blocked) {
    *blocked = false;
    for (;;) {
      if (Unsent() == 0) {
        out_.clear();
        out_offset_ = 0;
        const uint8_t* data;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(session_, &data)) > 0) out_.insert(out_.end(), data, data + n);
        if (n < 0) {
          Fail("http2", std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
          return false;
        }
        if (Unsent() == 0) return true;
      }
      // OpenSSL writes each 16 KiB record to the socket by itself: corked, the kernel sends them as
      // full segments rather than one each (the sending thread's time went mostly to the kernel's
      // sending of segments, and the receiver's to waking for each).
      if (!corked_ && Unsent() > kRecordBytes) {
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
        corked_ = true;
      }
      // Next: out_'s bytes up to the next piece, or that piece.
      bool piece = !pieces_.empty() && pieces_.front().out_offset == out_offset_;
      const uint8_t* data = piece ? pieces_.front().data : out_.data() + out_offset_;
      size_t length = piece ? pieces_.front().length : (pieces_.empty() ? out_.size() : pieces_.front().out_offset) - out_offset_;
      // OpenSSL's error queue is empty here, as SSL_get_error needs: every failure ends the call, and
      // clearing it on every record cost a third of this thread's time.
      size_t written = 0;
      int rc = SSL_write_ex(ssl_, data, length, &written);
      if (rc == 1) {
        if (!piece) {
          out_offset_ += written;
          continue;
        }
        Piece& p = pieces_.front();
        p.data += written;
        p.length -= written;
        p.body_offset += written;
        piece_bytes_ -= written;
        if (p.length == 0) pieces_.pop_front();
        BodyCopied();
        continue;
      }
      int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
        *blocked = true;
        return true;
      }
      Fail("closed", OpenSslErrors("the connection broke while sending"));
      return false;
    }
  }

  // Where the next read goes, and how much of it: no further than the part of the frame being
  // read. A message's bytes in a DATA frame of the call are read straight into the message's
  // memory (nghttp2 then hands Frame() the same bytes in place): no copy of them out of in_.
  uint8_t* ReadTarget(size_t* max) {
    if (preface_left_ > 0) {
      *max = preface_left_;
    } else if (payload_left_ == 0) {
      *max = sizeof frame_header_ - frame_header_used_;
    } else if (!into_messages_ || failed_) {
      *max = std::min(sizeof in_, payload_left_);
    } else if (!message_) {
      *max = std::min(payload_left_, sizeof prefix_ - prefix_used_);
    } else {
      *max = std::min(payload_left_, message_length_ - message_used_);
      return message_ + message_used_;
    }
    return in_;
  }

  // Follows the frames over `n` bytes just read into the part ReadTarget gave.
  void Track(const uint8_t* data, size_t n) {
    if (preface_left_ > 0) {
      preface_left_ -= n;
    } else if (payload_left_ > 0) {
      payload_left_ -= n;
    } else {
      memcpy(frame_header_ + frame_header_used_, data, n);
      frame_header_used_ += n;
      if (frame_header_used_ < sizeof frame_header_) return;
      frame_header_used_ = 0;
      const uint8_t* h = frame_header_;
      payload_left_ = (size_t(h[0]) << 16) | (size_t(h[1]) << 8) | h[2];
      int32_t stream = static_cast<int32_t>(((uint32_t(h[5]) & 0x7f) << 24) | (uint32_t(h[6]) << 16) | (uint32_t(h[7]) << 8) | h[8]);
      // (A padded frame's payload starts with its pad length: read through in_.)
      into_messages_ = h[3] == kFrameData && !(h[4] & kFlagPadded) && stream == stream_id_;
    }
  }

  // Reads and hands to nghttp2 all the socket holds; false when the connection ended or broke.
  bool Receive() {
    for (;;) {
      size_t n = 0, max;  // (the error queue is empty: see Send)
      uint8_t* target = ReadTarget(&max);
      int rc = SSL_read_ex(ssl_, target, max, &n);
      if (rc == 1) {
        last_heard_ = std::chrono::steady_clock::now();
        ping_sent_ = false;
        Track(target, n);
        ssize_t used = nghttp2_session_mem_recv(session_, target, n);
        if (used < 0) {
          if (!failed_) Fail("http2", std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(used)));
          return false;
        }
        continue;
      }
      int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return true;
      if (options_.server) {
        if (!stream_closed_ && !failed_) Fail("closed", error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                                                            ? std::string("the client closed the connection")
                                                            : OpenSslErrors("the connection broke"));
      } else if (!answered_ && !failed_) {
        // A TLS 1.3 server refuses a client's certificate after the handshake, by closing without a word.
        Fail("refused", "the server closed the connection right after the TLS handshake, before answering: it refused this client's certificate");
      } else if (!stream_closed_ && !failed_) {
        std::string why = error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                              ? std::string("the server closed the connection")
                              : OpenSslErrors("the connection broke");
        Fail("closed", why);
      }
      return false;
    }
  }

  bool Exchange() {
    nghttp2_session_callbacks* callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnClose);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, SendData);
    nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, FrameLength);
    if (options_.server) {
      nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, OnBeginHeaders);
      nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, OnFrameSent);
    }
    nghttp2_option* option;
    nghttp2_option_new(&option);
    // Flow control by what JavaScript has taken (see below), not by what arrived.
    nghttp2_option_set_no_auto_window_update(option, 1);
    int rc = options_.server ? nghttp2_session_server_new2(&session_, callbacks, this, option)
                             : nghttp2_session_client_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (rc != 0) {
      Fail("http2", "cannot start an HTTP/2 session");
      return false;
    }
    nghttp2_settings_entry settings[] = {
        // (ENABLE_PUSH is the client's to send; a server's single call is the connection's one stream.)
        {options_.server ? kSettingsMaxConcurrentStreams : kSettingsEnablePush, options_.server ? 1u : 0u},
        {kSettingsInitialWindowSize, static_cast<uint32_t>(options_.stream_window)},
        {kSettingsMaxHeaderListSize, 64 * 1024},
        {kSettingsMaxFrameSize, static_cast<uint32_t>(kFrameBytes)},
    };
    nghttp2_submit_settings(session_, 0, settings, sizeof settings / sizeof settings[0]);
    nghttp2_session_set_local_window_size(session_, 0, 0, options_.connection_window);

    if (!options_.server) {
      static const std::vector<std::pair<std::string, std::string>> kFixed = {{":method", "POST"}, {":scheme", "https"}};
      std::vector<std::pair<std::string, std::string>> request = kFixed;
      request.emplace_back(":authority", options_.authority);
      request.emplace_back(":path", options_.path);
      request.insert(request.end(), options_.headers.begin(), options_.headers.end());
      std::vector<nghttp2_nv> nva = NameValues(request);
      nghttp2_data_provider body{};
      body.read_callback = options_.streamed ? ReadStreamedBody : ReadBody;
      stream_id_ = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &body, nullptr);
      if (stream_id_ < 0) {
        Fail("http2", std::string("HTTP/2: ") + nghttp2_strerror(stream_id_));
        return false;
      }
    }

    bool rst_sent = false;
    last_heard_ = std::chrono::steady_clock::now();
    for (;;) {
      if (cancel_.load() && !rst_sent && !stream_closed_) {
        if (stream_id_ < 0) return true;  // serving, before the client opened its call
        nghttp2_submit_rst_stream(session_, 0, stream_id_, kErrorCancel);
        rst_sent = true;
      }
      if (options_.server && stream_id_ >= 0 && !response_submitted_) SubmitResponse();
      if (body_deferred_) {
        std::lock_guard<std::mutex> lock(body_mutex_);
        if (body_queued_ > body_promised_ || body_end_) {
          body_deferred_ = false;
          nghttp2_session_resume_data(session_, stream_id_);
        }
      }
      // Window for what arrived, while JavaScript holds fewer than two messages: so the
      // server sends at most a window ahead of the caller, as Node's streams pause.
      if (unconsumed_ > 0 && untaken_.load() < 2 && !stream_closed_) {
        nghttp2_session_consume(session_, stream_id_, unconsumed_);
        unconsumed_ = 0;
      }
      bool blocked;
      if (!Send(&blocked)) return false;
      if (stream_closed_ && !blocked) return true;
      if (rst_sent && !blocked) return true;
      if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) && !blocked) return true;
      if (SSL_pending(ssl_) == 0) {
        auto now = std::chrono::steady_clock::now();
        auto due = last_heard_ + std::chrono::milliseconds(options_.keepalive_interval_ms +
                                                           (ping_sent_ ? options_.keepalive_timeout_ms : 0));
        int timeout = static_cast<int>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count()));
        Wait(static_cast<short>(POLLIN | (blocked ? POLLOUT : 0)), timeout);
        if (cancel_.load()) continue;  // reset the stream first
        if (std::chrono::steady_clock::now() >= due) {
          if (ping_sent_) {
            Fail("closed", "the server stopped answering: no reply to an HTTP/2 PING in " + std::to_string(options_.keepalive_timeout_ms) + " ms");
            return false;
          }
          nghttp2_submit_ping(session_, 0, nullptr);
          ping_sent_ = true;
          continue;
        }
      }
      if (!Receive()) return false;
    }
  }

  void Cleanup() {
    if (session_) nghttp2_session_del(session_);
    if (message_ && message_slot_ < 0) pool.Give(message_, message_capacity_);
    for (Slot& slot : slots_)
      if (slot.memory && !slot.announced) pool.Give(slot.memory, slot.capacity);
    if (ssl_) {
      SSL_shutdown(ssl_);
      SSL_free(ssl_);
    }
    if (ctx_) SSL_CTX_free(ctx_);
    if (taken_) DrainBeforeClose();  // (a declined connection is Node's: its socket is left alone)
    if (fd_ >= 0) close(fd_);
  }

  // Serving: lets the client read all that was sent before the descriptor closes. Closed while
  // the client's bytes still come in (a publisher refused at its first message keeps sending),
  // the kernel resets the connection, and the client's kernel then drops the answer it had not
  // read yet: the client saw "the connection broke" instead of its refusal. So: nothing more is
  // written, and what comes in is read and dropped until the client closes, a second at most.
  void DrainBeforeClose() {
    shutdown(fd_, SHUT_WR);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    char sink[16384];
    for (;;) {
      ssize_t n = read(fd_, sink, sizeof sink);
      if (n > 0) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0 || !Wait(POLLIN, static_cast<int>(left))) return;  // out of time, or cancelled (the server is closing)
    }
  }

  Options options_;
  int fd_ = -1;
  bool taken_ = false;  // serving: the connection is this module's (not declined to Node)
  int wake_fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  size_t body_sent_ = 0;
  std::vector<uint8_t> out_;
  size_t out_offset_ = 0;
  // Request bytes OpenSSL reads from JavaScript's memory, each after out_'s bytes before `out_offset`.
  struct Piece {
    size_t out_offset;
    const uint8_t* data;
    size_t length;
    size_t body_offset;  // of `data` in the request's bytes
  };
  std::deque<Piece> pieces_;
  size_t piece_bytes_ = 0;
  bool corked_ = false;
  uint8_t in_[64 * 1024];
  // The frames as they are read (see ReadTarget): a server first reads the client's preface.
  size_t preface_left_;
  uint8_t frame_header_[9];
  size_t frame_header_used_ = 0;
  size_t payload_left_ = 0;     // of the frame being read
  bool into_messages_ = false;  // that frame is the call's DATA, its messages read in place
  std::vector<std::pair<std::string, std::string>> headers_;
  bool got_headers_ = false;
  bool answered_ = false;  // any frame from the server
  std::chrono::steady_clock::time_point last_heard_;
  bool ping_sent_ = false;  // since the server was last heard
  bool stream_closed_ = false;
  bool failed_ = false;
  size_t unconsumed_ = 0;
  uint8_t prefix_[5];
  size_t prefix_used_ = 0;
  uint8_t* message_ = nullptr;
  size_t message_length_ = 0, message_used_ = 0, message_capacity_ = 0;
  int message_slot_ = -1;
  Slot slots_[kSlots];
  std::atomic<int> untaken_{0};
  std::atomic<bool> cancel_{false};
  std::mutex events_mutex_;
  std::vector<Event> events_;
  // A streamed request (body_mutex_ guards these but body_deferred_, the thread's own).
  std::mutex body_mutex_;
  std::deque<Chunk> body_chunks_;
  size_t head_offset_ = 0;     // into the first chunk
  size_t body_queued_ = 0;     // bytes JavaScript handed over
  size_t body_promised_ = 0;   // of them, promised to nghttp2 for a DATA frame
  size_t body_taken_ = 0;      // of them, framed by SendData
  size_t body_copied_ = 0;     // of them, copied out (JavaScript may let them go)
  size_t copied_target_ = 0;   // a kCopied event once body_copied_ reaches this (0: none wanted)
  bool body_end_ = false;
  bool body_deferred_ = false;
  // Serving (body_mutex_ guards the response's headers and trailers; the rest is the thread's own).
  bool request_ended_ = false;
  bool response_ready_ = false;
  bool response_end_ = false;
  bool response_submitted_ = false;
  std::vector<std::pair<std::string, std::string>> response_headers_;
  std::vector<std::pair<std::string, std::string>> trailers_;
};

// ---------------------------------------------------------------------------
// JavaScript bindings.

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, "ERR_LCLSTREAM_NATIVE", #call " failed"); \
      return nullptr;                                                 \
    }                                                                 \
  } while (0)

std::string StringOf(napi_env env, napi_value object, const char* key) {
  napi_value value;
  napi_valuetype type;
  if (napi_get_named_property(env, object, key, &value) != napi_ok || napi_typeof(env, value, &type) != napi_ok || type != napi_string)
    return "";
  size_t length;
  napi_get_value_string_utf8(env, value, nullptr, 0, &length);
  std::string out(length, '\0');
  napi_get_value_string_utf8(env, value, &out[0], length + 1, &length);
  return out;
}

double NumberOf(napi_env env, napi_value object, const char* key, double fallback) {
  napi_value value;
  double out;
  if (napi_get_named_property(env, object, key, &value) != napi_ok || napi_get_value_double(env, value, &out) != napi_ok) return fallback;
  return out;
}

napi_value HeaderList(napi_env env, const std::vector<std::pair<std::string, std::string>>& headers) {
  napi_value list;
  napi_create_array_with_length(env, headers.size(), &list);
  for (size_t i = 0; i < headers.size(); i++) {
    napi_value pair, name, value;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_string_utf8(env, headers[i].first.data(), headers[i].first.size(), &name);
    napi_create_string_latin1(env, headers[i].second.data(), headers[i].second.size(), &value);
    napi_set_element(env, pair, 0, name);
    napi_set_element(env, pair, 1, value);
    napi_set_element(env, list, i, pair);
  }
  return list;
}

void SetString(napi_env env, napi_value object, const char* key, const std::string& text) {
  napi_value value;
  napi_create_string_utf8(env, text.data(), text.size(), &value);
  napi_set_named_property(env, object, key, value);
}

void SetNumber(napi_env env, napi_value object, const char* key, double number) {
  napi_value value;
  napi_create_double(env, number, &value);
  napi_set_named_property(env, object, key, value);
}

struct Handle {
  std::shared_ptr<Call> call;
};

// On the JavaScript thread: hands the queued events to the call's callback as one array.
void Deliver(napi_env env, napi_value callback, void* context, void*) {
  if (!env) return;
  auto* handle = static_cast<Handle*>(context);
  std::vector<Event> events = handle->call->TakeEvents();
  if (events.empty()) return;
  napi_value list;
  napi_create_array_with_length(env, events.size(), &list);
  static const char* kinds[] = {"headers", "message", "trailers", "closed", "error", "copied", "finished", "accepted", "declined", "peer", "end"};
  for (size_t i = 0; i < events.size(); i++) {
    Event& e = events[i];
    napi_value object;
    napi_create_object(env, &object);
    SetString(env, object, "kind", kinds[e.kind]);
    switch (e.kind) {
      case Event::kHeaders:
      case Event::kTrailers: {
        napi_set_named_property(env, object, "headers", HeaderList(env, e.headers));
        napi_value end;
        napi_get_boolean(env, e.end_stream, &end);
        napi_set_named_property(env, object, "endStream", end);
        break;
      }
      case Event::kMessage: {
        SetNumber(env, object, "length", static_cast<double>(e.length));
        SetNumber(env, object, "slot", e.slot);
        if (e.data) {
          // The whole memory: a borrowed slot's ArrayBuffer serves every message that lands in it.
          napi_value buffer;
          size_t size = e.slot >= 0 ? e.capacity : e.length;
          napi_create_external_arraybuffer(env, e.data, size, FreeMessage, reinterpret_cast<void*>(e.capacity), &buffer);
          napi_set_named_property(env, object, "buffer", buffer);
        }
        break;
      }
      case Event::kClosed:
        SetNumber(env, object, "errorCode", e.error_code);
        break;
      case Event::kError:
        SetString(env, object, "reason", e.reason);
        SetString(env, object, "message", e.message);
        SetNumber(env, object, "length", static_cast<double>(e.length));
        break;
      case Event::kCopied:
        SetNumber(env, object, "copied", static_cast<double>(e.length));
        break;
      case Event::kPeer: {
        napi_value certificate;
        napi_create_buffer_copy(env, e.message.size(), e.message.data(), nullptr, &certificate);
        napi_set_named_property(env, object, "certificate", certificate);
        break;
      }
      case Event::kFinished:
      case Event::kAccepted:
      case Event::kDeclined:
      case Event::kEnd:
        break;
    }
    napi_set_element(env, list, i, object);
  }
  napi_value global;
  napi_get_global(env, &global);
  napi_call_function(env, global, callback, 1, &list, nullptr);
}

void FinalizeHandle(napi_env, void* data, void*) { delete static_cast<Handle*>(data); }

// The call a method was called on, and up to `argc` of its arguments into `argv` (`argc` then says how many came).
Handle* HandleOf(napi_env env, napi_callback_info info, size_t* argc = nullptr, napi_value* argv = nullptr) {
  napi_value self;
  void* data = nullptr;
  size_t none = 0;
  napi_get_cb_info(env, info, argc ? argc : &none, argv, &self, nullptr);
  napi_unwrap(env, self, &data);
  return static_cast<Handle*>(data);
}

napi_value Taken(napi_env env, napi_callback_info info) {
  if (Handle* h = HandleOf(env, info)) h->call->Taken();
  return nullptr;
}

napi_value Cancel(napi_env env, napi_callback_info info) {
  if (Handle* h = HandleOf(env, info)) h->call->Cancel();
  return nullptr;
}

napi_value Released(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t slot = -1;
  Handle* h = HandleOf(env, info, &argc, argv);
  if (h && argc == 1 && napi_get_value_int32(env, argv[0], &slot) == napi_ok) h->call->Released(slot);
  return nullptr;
}

// write(chunks, end): hands request bytes over (see Call::Write); returns the bytes copied so far.
napi_value Write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Handle* h = HandleOf(env, info, &argc, argv);
  if (!h || argc != 2) return nullptr;
  uint32_t count = 0;
  CHECK(napi_get_array_length(env, argv[0], &count));
  std::vector<Chunk> chunks;
  chunks.reserve(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    void* bytes;
    size_t length;
    CHECK(napi_get_element(env, argv[0], i, &item));
    CHECK(napi_get_typedarray_info(env, item, nullptr, &length, &bytes, nullptr, nullptr));
    chunks.push_back({static_cast<const uint8_t*>(bytes), length});
  }
  bool end = false;
  CHECK(napi_get_value_bool(env, argv[1], &end));
  napi_value copied;
  CHECK(napi_create_double(env, static_cast<double>(h->call->Write(std::move(chunks), end)), &copied));
  return copied;
}

// awaitCopied(total): true when that many request bytes are copied; otherwise a "copied" event follows.
napi_value AwaitCopied(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double total = 0;
  Handle* h = HandleOf(env, info, &argc, argv);
  if (!h || argc != 1) return nullptr;
  CHECK(napi_get_value_double(env, argv[0], &total));
  napi_value done;
  CHECK(napi_get_boolean(env, h->call->AwaitCopied(static_cast<size_t>(total)), &done));
  return done;
}

// [name, value] pairs from JavaScript; false (with an exception pending) when `list` is not such a list.
bool HeadersFrom(napi_env env, napi_value list, std::vector<std::pair<std::string, std::string>>* out) {
  uint32_t count = 0;
  if (napi_get_array_length(env, list, &count) != napi_ok) return false;
  for (uint32_t i = 0; i < count; i++) {
    napi_value pair, name, value;
    if (napi_get_element(env, list, i, &pair) != napi_ok || napi_get_element(env, pair, 0, &name) != napi_ok ||
        napi_get_element(env, pair, 1, &value) != napi_ok)
      return false;
    size_t n;
    std::string a, b;
    if (napi_get_value_string_utf8(env, name, nullptr, 0, &n) != napi_ok) return false;
    a.resize(n);
    napi_get_value_string_utf8(env, name, &a[0], n + 1, &n);
    if (napi_get_value_string_utf8(env, value, nullptr, 0, &n) != napi_ok) return false;
    b.resize(n);
    napi_get_value_string_utf8(env, value, &b[0], n + 1, &n);
    out->emplace_back(std::move(a), std::move(b));
  }
  return true;
}

// respond(headers, endStream): a served call's response headers (see Call::Respond).
napi_value Respond(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Handle* h = HandleOf(env, info, &argc, argv);
  if (!h || argc != 2) return nullptr;
  std::vector<std::pair<std::string, std::string>> headers;
  bool end = false;
  CHECK(HeadersFrom(env, argv[0], &headers) ? napi_ok : napi_invalid_arg);
  CHECK(napi_get_value_bool(env, argv[1], &end));
  h->call->Respond(std::move(headers), end);
  return nullptr;
}

// finish(trailers): a served call's response ends with these, after what was written.
napi_value Finish(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Handle* h = HandleOf(env, info, &argc, argv);
  if (!h || argc != 1) return nullptr;
  std::vector<std::pair<std::string, std::string>> trailers;
  CHECK(HeadersFrom(env, argv[0], &trailers) ? napi_ok : napi_invalid_arg);
  h->call->Finish(std::move(trailers));
  return nullptr;
}

// Options both ends share.
void CommonOptions(napi_env env, napi_value o, Options* options) {
  options->ca_pem = StringOf(env, o, "caPem");
  options->cert_pem = StringOf(env, o, "certPem");
  options->key_pem = StringOf(env, o, "keyPem");
  options->crl_pem = StringOf(env, o, "crlPem");
  options->stream_window = static_cast<int32_t>(NumberOf(env, o, "streamWindowBytes", options->stream_window));
  options->connection_window = static_cast<int32_t>(NumberOf(env, o, "connectionWindowBytes", options->connection_window));
  options->max_message_bytes = static_cast<size_t>(NumberOf(env, o, "maxMessageBytes", static_cast<double>(options->max_message_bytes)));
  options->keepalive_interval_ms = static_cast<int>(NumberOf(env, o, "keepaliveIntervalMs", options->keepalive_interval_ms));
  options->keepalive_timeout_ms = static_cast<int>(NumberOf(env, o, "keepaliveTimeoutMs", options->keepalive_timeout_ms));
}

// Starts the call's thread; returns its JavaScript handle, whose events go to `on_events`.
napi_value StartCall(napi_env env, Options options, napi_value on_events) {
  auto call = std::make_shared<Call>(std::move(options));
  auto* handle = new Handle{call};
  napi_value self, name;
  CHECK(napi_create_object(env, &self));
  CHECK(napi_wrap(env, self, handle, FinalizeHandle, nullptr, nullptr));
  napi_property_descriptor methods[] = {
      {"taken", nullptr, Taken, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"cancel", nullptr, Cancel, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"released", nullptr, Released, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"write", nullptr, Write, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"awaitCopied", nullptr, AwaitCopied, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"respond", nullptr, Respond, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finish", nullptr, Finish, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  CHECK(napi_define_properties(env, self, sizeof methods / sizeof methods[0], methods));
  CHECK(napi_create_string_utf8(env, "lclstream stream call", NAPI_AUTO_LENGTH, &name));
  // The handle outlives the thread's last event: the call's JavaScript side holds it.
  auto* context = new Handle{call};
  CHECK(napi_create_threadsafe_function(
      env, on_events, nullptr, name, 0, 1, context, [](napi_env, void* data, void*) { delete static_cast<Handle*>(data); }, context, Deliver,
      &call->tsfn));
  call->Start(call);
  return self;
}

// serve(options, onEvents): serves a call on an accepted connection (options.fd, which stays
// JavaScript's: the thread works on a copy). Declined at once, untouched, unless the client offered
// the marker; the server's certificate, key and CAs come in options as open's do.
napi_value Serve(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Options options;
  options.server = true;
  CommonOptions(env, argv[0], &options);
  options.handshake_timeout_ms = static_cast<int>(NumberOf(env, argv[0], "handshakeTimeoutMs", options.handshake_timeout_ms));
  options.fd = fcntl(static_cast<int>(NumberOf(env, argv[0], "fd", -1)), F_DUPFD_CLOEXEC, 0);
  if (options.fd < 0) {
    napi_throw_error(env, "ERR_LCLSTREAM_NATIVE", "serve: options.fd is not an open descriptor");
    return nullptr;
  }
  int flags = fcntl(options.fd, F_GETFL);
  fcntl(options.fd, F_SETFL, flags | O_NONBLOCK);
  return StartCall(env, std::move(options), argv[1]);
}

// open(options, onEvents): starts the call; returns { taken(), cancel(), released(), write(), awaitCopied() }.
napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  napi_value o = argv[0];
  Options options;
  options.host = StringOf(env, o, "host");
  options.port = static_cast<int>(NumberOf(env, o, "port", 0));
  options.servername = StringOf(env, o, "servername");
  options.authority = StringOf(env, o, "authority");
  options.path = StringOf(env, o, "path");
  CommonOptions(env, o, &options);
  options.borrowed = NumberOf(env, o, "borrowed", 0) != 0;
  options.streamed = NumberOf(env, o, "streamed", 0) != 0;
  napi_value headers, body;
  CHECK(napi_get_named_property(env, o, "headers", &headers));
  CHECK(HeadersFrom(env, headers, &options.headers) ? napi_ok : napi_invalid_arg);
  CHECK(napi_get_named_property(env, o, "body", &body));
  void* bytes;
  size_t length;
  CHECK(napi_get_typedarray_info(env, body, nullptr, &length, &bytes, nullptr, nullptr));
  options.body.assign(static_cast<uint8_t*>(bytes), static_cast<uint8_t*>(bytes) + length);
  return StartCall(env, std::move(options), argv[1]);
}

// The ArrayBuffer that release, hold and unhold are called with, or nullptr (a TypeError thrown).
napi_value ArrayBufferArgument(napi_env env, napi_callback_info info, const char* error) {
  size_t argc = 1;
  napi_value buffer;
  CHECK(napi_get_cb_info(env, info, &argc, &buffer, nullptr, nullptr));
  bool detachable = false;
  if (argc < 1 || napi_is_arraybuffer(env, buffer, &detachable) != napi_ok || !detachable) {
    napi_throw_type_error(env, "ERR_LCLSTREAM_NATIVE", error);
    return nullptr;
  }
  return buffer;
}

// release(arrayBuffer): detaches a message's ArrayBuffer, so its memory goes back to the pool now
// rather than when V8 collects it (and V8 no longer counts it as external memory, which is what
// made it collect). The caller must know that nothing reads it any more: every view of it is empty
// from here on.
napi_value Release(napi_env env, napi_callback_info info) {
  napi_value buffer = ArrayBufferArgument(env, info, "release: the argument is not an ArrayBuffer");
  if (buffer) CHECK(napi_detach_arraybuffer(env, buffer));
  return nullptr;
}

// Moves V8's count of external memory by a message's size, down (-1) or back up (+1).
napi_value Count(napi_env env, napi_callback_info info, int sign, const char* error) {
  napi_value buffer = ArrayBufferArgument(env, info, error);
  if (!buffer) return nullptr;
  void* data;
  size_t length;
  int64_t total;
  CHECK(napi_get_arraybuffer_info(env, buffer, &data, &length));
  CHECK(napi_adjust_external_memory(env, sign * static_cast<int64_t>(length), &total));
  return nullptr;
}

// hold(arrayBuffer): V8 stops counting a message's memory as external memory, while the caller
// keeps it and gives it back itself; unhold(arrayBuffer) counts it again, before it is released or
// left to the collector (V8 takes it off its count then). V8 starts a full collection whenever
// external memory grows by 64 MiB, and a buffer holding a run of batches made it collect again and
// again to free nothing (29% of the buffer's CPU samples taking in a psana run it held whole, 9%
// after).
napi_value Hold(napi_env env, napi_callback_info info) { return Count(env, info, -1, "hold: the argument is not an ArrayBuffer"); }
napi_value Unhold(napi_env env, napi_callback_info info) { return Count(env, info, +1, "unhold: the argument is not an ArrayBuffer"); }

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"serve", nullptr, Serve, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"release", nullptr, Release, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"hold", nullptr, Hold, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"unhold", nullptr, Unhold, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
