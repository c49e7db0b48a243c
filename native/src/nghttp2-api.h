// The part of nghttp2's C API this module calls. Node exports nghttp2's
// symbols from its own binary but installs no nghttp2 header, so the few
// declarations needed are written out here, as nghttp2's documentation gives
// them (its ABI has been stable across 1.x; Node 20 bundles 1.61).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

extern "C" {
typedef struct nghttp2_session nghttp2_session;
typedef struct nghttp2_session_callbacks nghttp2_session_callbacks;
typedef struct nghttp2_option nghttp2_option;
typedef struct nghttp2_priority_spec nghttp2_priority_spec;

typedef struct {
  uint8_t* name;
  uint8_t* value;
  size_t namelen;
  size_t valuelen;
  uint8_t flags;
} nghttp2_nv;

typedef struct {
  size_t length;
  int32_t stream_id;
  uint8_t type;
  uint8_t flags;
  uint8_t reserved;
} nghttp2_frame_hd;

// Every frame starts with its header; only that is read here.
typedef struct {
  nghttp2_frame_hd hd;
} nghttp2_frame;

typedef struct {
  int32_t settings_id;
  uint32_t value;
} nghttp2_settings_entry;

typedef union {
  int fd;
  void* ptr;
} nghttp2_data_source;

typedef ssize_t (*nghttp2_data_source_read_callback)(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                                                     uint32_t* data_flags, nghttp2_data_source* source, void* user_data);
typedef struct {
  nghttp2_data_source source;
  nghttp2_data_source_read_callback read_callback;
} nghttp2_data_provider;

typedef int (*nghttp2_send_data_callback)(nghttp2_session* session, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                                          nghttp2_data_source* source, void* user_data);
typedef int (*nghttp2_on_frame_recv_callback)(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
typedef int (*nghttp2_on_data_chunk_recv_callback)(nghttp2_session* session, uint8_t flags, int32_t stream_id, const uint8_t* data,
                                                   size_t len, void* user_data);
typedef int (*nghttp2_on_stream_close_callback)(nghttp2_session* session, int32_t stream_id, uint32_t error_code, void* user_data);
typedef int (*nghttp2_on_begin_headers_callback)(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
typedef int (*nghttp2_on_frame_send_callback)(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
typedef int (*nghttp2_on_header_callback)(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                                          const uint8_t* value, size_t valuelen, uint8_t flags, void* user_data);

int nghttp2_session_callbacks_new(nghttp2_session_callbacks** callbacks_ptr);
void nghttp2_session_callbacks_del(nghttp2_session_callbacks* callbacks);
void nghttp2_session_callbacks_set_on_frame_recv_callback(nghttp2_session_callbacks* cbs, nghttp2_on_frame_recv_callback cb);
void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(nghttp2_session_callbacks* cbs, nghttp2_on_data_chunk_recv_callback cb);
void nghttp2_session_callbacks_set_on_stream_close_callback(nghttp2_session_callbacks* cbs, nghttp2_on_stream_close_callback cb);
void nghttp2_session_callbacks_set_on_header_callback(nghttp2_session_callbacks* cbs, nghttp2_on_header_callback cb);
void nghttp2_session_callbacks_set_on_begin_headers_callback(nghttp2_session_callbacks* cbs, nghttp2_on_begin_headers_callback cb);
void nghttp2_session_callbacks_set_on_frame_send_callback(nghttp2_session_callbacks* cbs, nghttp2_on_frame_send_callback cb);

void nghttp2_session_callbacks_set_send_data_callback(nghttp2_session_callbacks* cbs, nghttp2_send_data_callback cb);
typedef ssize_t (*nghttp2_data_source_read_length_callback)(nghttp2_session* session, uint8_t frame_type, int32_t stream_id,
                                                            int32_t session_remote_window_size, int32_t stream_remote_window_size,
                                                            uint32_t remote_max_frame_size, void* user_data);
void nghttp2_session_callbacks_set_data_source_read_length_callback(nghttp2_session_callbacks* cbs, nghttp2_data_source_read_length_callback cb);
int nghttp2_option_new(nghttp2_option** option_ptr);
void nghttp2_option_del(nghttp2_option* option);
void nghttp2_option_set_no_auto_window_update(nghttp2_option* option, int val);

int nghttp2_session_client_new2(nghttp2_session** session_ptr, const nghttp2_session_callbacks* callbacks, void* user_data,
                                const nghttp2_option* option);
int nghttp2_session_server_new2(nghttp2_session** session_ptr, const nghttp2_session_callbacks* callbacks, void* user_data,
                                const nghttp2_option* option);
void nghttp2_session_del(nghttp2_session* session);
int nghttp2_submit_settings(nghttp2_session* session, uint8_t flags, const nghttp2_settings_entry* iv, size_t niv);
int nghttp2_session_set_local_window_size(nghttp2_session* session, uint8_t flags, int32_t stream_id, int32_t window_size);
int32_t nghttp2_submit_request(nghttp2_session* session, const nghttp2_priority_spec* pri_spec, const nghttp2_nv* nva, size_t nvlen,
                               const nghttp2_data_provider* data_prd, void* stream_user_data);
int nghttp2_submit_response(nghttp2_session* session, int32_t stream_id, const nghttp2_nv* nva, size_t nvlen,
                            const nghttp2_data_provider* data_prd);
int nghttp2_submit_trailer(nghttp2_session* session, int32_t stream_id, const nghttp2_nv* nva, size_t nvlen);
ssize_t nghttp2_session_mem_recv(nghttp2_session* session, const uint8_t* in, size_t inlen);
ssize_t nghttp2_session_mem_send(nghttp2_session* session, const uint8_t** data_ptr);
int nghttp2_session_resume_data(nghttp2_session* session, int32_t stream_id);
int nghttp2_session_consume(nghttp2_session* session, int32_t stream_id, size_t size);
int nghttp2_submit_rst_stream(nghttp2_session* session, uint8_t flags, int32_t stream_id, uint32_t error_code);
int nghttp2_session_want_read(nghttp2_session* session);
int nghttp2_session_want_write(nghttp2_session* session);
int nghttp2_session_terminate_session(nghttp2_session* session, uint32_t error_code);
int nghttp2_submit_ping(nghttp2_session* session, uint8_t flags, const uint8_t* opaque_data);
const char* nghttp2_strerror(int lib_error_code);
}

// Values from RFC 9113 and nghttp2.h.
constexpr uint8_t kFrameData = 0x0;
constexpr uint8_t kFrameHeaders = 0x1;
constexpr uint8_t kFlagEndStream = 0x1;
constexpr uint8_t kFlagPadded = 0x8;
constexpr int32_t kSettingsEnablePush = 0x2;
constexpr int32_t kSettingsMaxConcurrentStreams = 0x3;
constexpr int32_t kSettingsInitialWindowSize = 0x4;
constexpr int32_t kSettingsMaxFrameSize = 0x5;
constexpr int32_t kSettingsMaxHeaderListSize = 0x6;
constexpr uint32_t kDataFlagEof = 0x1;
constexpr uint32_t kDataFlagNoEndStream = 0x2;
constexpr uint32_t kDataFlagNoCopy = 0x4;
constexpr uint32_t kErrorNone = 0x0;
constexpr uint32_t kErrorRefusedStream = 0x7;
constexpr uint32_t kErrorCancel = 0x8;
constexpr int kErrWouldBlock = -504;
constexpr int kErrDeferred = -508;
constexpr int kErrCallbackFailure = -902;
