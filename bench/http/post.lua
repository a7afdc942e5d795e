-- wrk script for bench/http: POSTs one MMIF file as the body of every request.
--   wrk -s bench/http/post.lua URL -- BODY.json
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local path = args[1]
  if path == nil then
    error("post.lua: pass the body file after --, e.g. wrk -s post.lua URL -- body.json")
  end
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
