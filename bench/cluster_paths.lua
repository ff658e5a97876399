-- bench/cluster_paths.lua: wrk script of bench/cluster.sh.
--   wrk -tT -cC ... -s bench/cluster_paths.lua URL -- PATHS_FILE
-- GETs the paths listed in PATHS_FILE (one a line) round robin, each wrk
-- thread from its own offset.  If $CLUSTER_GATEWAYS is set ("host:port,..."),
-- wrk thread k connects to gateway k mod n instead of URL's host, so one
-- wrk run spreads its connections evenly over every worker's gateway.
-- Prints one WRKRESULT line with totals and latency percentiles (us).
local paths, n, i = {}, 0, 0
local addrs = nil
local threads = 0
function setup(thread)
	if addrs == nil then
		addrs = {}
		for hp in string.gmatch(os.getenv("CLUSTER_GATEWAYS") or "", "[^,]+") do
			local h, p = string.match(hp, "^(.+):(%d+)$")
			local a = wrk.lookup(h, p)
			addrs[#addrs + 1] = a[1]
		end
	end
	threads = threads + 1
	if #addrs > 0 then
		thread.addr = addrs[(threads - 1) % #addrs + 1]
	end
	thread:set("tid", threads)
end
function init(args)
	for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
	i = ((tid or 1) - 1) * 7 % n
end
function request()
	i = i % n + 1
	return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("WRKRESULT requests=%d bytes=%d duration_us=%d errors=%d status_errors=%d timeouts=%d"
		.. " p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
		summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write,
		e.status, e.timeout, latency:percentile(50), latency:percentile(90),
		latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
