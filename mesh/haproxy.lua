-- What HAProxy lacks for the lclstream front door, in Lua.
--
-- x-forwarded-client-cert in Envoy's format, so the services see the same
-- header behind either proxy:
--   By=<proxy identity>;Hash=<sha256 of the DER, hex>;Cert="<URL-encoded PEM>";URI=<identity>
-- HAProxy has no fetch for a certificate's URI SANs, so they are read from the
-- DER here: each is a context tag [6] (0x86) holding an IA5String.

local function uris_of(der)
  local uris = {}
  local i = 1
  while true do
    local at = string.find(der, "\134", i, true)
    if not at then break end
    local len, start = string.byte(der, at + 1), at + 2
    if len == 0x81 then len, start = string.byte(der, at + 2), at + 3 end
    if len and (len < 0x80 or start == at + 3) then
      local value = string.sub(der, start, start + len - 1)
      if string.sub(value, 1, 9) == "spiffe://" and not string.find(value, "[%c%s,;\"]") then
        table.insert(uris, value)
      end
    end
    i = at + 1
  end
  return uris
end

local function pem_of(txn, der)
  local b64 = txn.c:base64(der)
  local wrapped = string.gsub(b64, string.rep(".", 64), "%0\n")
  wrapped = string.gsub(wrapped, "\n$", "")
  return "-----BEGIN CERTIFICATE-----\n" .. wrapped .. "\n-----END CERTIFICATE-----\n"
end

local function url_encode(text)
  return (string.gsub(text, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- The client's identity: its one spiffe:// URI SAN, or "" (for RBAC).
core.register_fetches("lclstream_client_uri", function(txn)
  local der = txn.f:ssl_c_der()
  if not der or der == "" then return "" end
  local uris = uris_of(der)
  if #uris ~= 1 then return "" end
  return uris[1]
end)

-- The whole header value for the verified client certificate.
core.register_fetches("lclstream_xfcc", function(txn)
  local der = txn.f:ssl_c_der()
  if not der or der == "" then return "" end
  local parts = {}
  local by = os.getenv("LCLSTREAM_FRONT_IDENTITY")
  if by and by ~= "" then table.insert(parts, "By=" .. by) end
  table.insert(parts, "Hash=" .. string.lower(txn.c:hex(txn.c:sha2(der, 256))))
  table.insert(parts, 'Cert="' .. url_encode(pem_of(txn, der)) .. '"')
  for _, uri in ipairs(uris_of(der)) do table.insert(parts, "URI=" .. uri) end
  return table.concat(parts, ";")
end)

-- A refusal as gRPC clients expect it: HTTP 200, the status in the headers and
-- no body ("trailers-only"). The status and message come from the variables
-- txn.grpc_status and txn.grpc_message.
core.register_service("lclstream_refuse", "http", function(applet)
  applet:set_status(200)
  applet:add_header("content-type", "application/grpc")
  applet:add_header("grpc-status", applet:get_var("txn.grpc_status") or "7")
  applet:add_header("grpc-message", applet:get_var("txn.grpc_message") or "refused by the front door")
  applet:start_response()
end)
