-- wrk script for benchmarks/bench_webhook.py: Alertmanager v4 webhook payloads, one firing
-- alert each, every fingerprint unique ("<m|o>-<thread>-<n>"). Every other alert carries
-- service=bench, which a watched target matches ("m"); the rest match nothing ("o").
-- Each thread counts the alerts the receiver reports as accepted or duplicate; done() prints
-- one line "WRK_RESULT {json}" for the benchmark to parse.
--
-- usage: wrk -t2 -c8 -d20s -s webhook.lua URL -- TOKEN

local threads = {}
local counter = 1

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local body_template = [[{"version":"4","groupKey":"{}:{alertname=\"BenchAlert\"}","truncatedAlerts":0,]] ..
    [["status":"firing","receiver":"watchdogd","groupLabels":{"alertname":"BenchAlert"},]] ..
    [["commonLabels":{"alertname":"BenchAlert","service":"%s","severity":"critical"},]] ..
    [["commonAnnotations":{"summary":"bench alert"},"externalURL":"http://alertmanager:9093",]] ..
    [["alerts":[{"status":"firing","labels":{"alertname":"BenchAlert","service":"%s",]] ..
    [["severity":"critical","instance":"%s"},"annotations":{"summary":"bench alert %s"},]] ..
    [["startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z",]] ..
    [["generatorURL":"http://prometheus:9090/graph?g0.expr=up","fingerprint":"%s"}]}]]

function init(args)
    sent = 0
    ok = 0
    failed = 0
    accepted = 0
    duplicates = 0
    headers = {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. (args[1] or ""),
    }
end

function request()
    sent = sent + 1
    local kind = (sent % 2 == 0) and "m" or "o"
    local service = (kind == "m") and "bench" or "other"
    local fingerprint = string.format("%s-%d-%d", kind, id, sent)
    local body = string.format(body_template, service, service, fingerprint, fingerprint,
        fingerprint)
    return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
    if status == 200 then
        ok = ok + 1
        accepted = accepted + (tonumber(string.match(body, '"accepted": *(%d+)')) or 0)
        duplicates = duplicates + (tonumber(string.match(body, '"duplicates": *(%d+)')) or 0)
    else
        failed = failed + 1
    end
end

function done(summary, latency, requests)
    local sent_by_thread = {}
    local totals = {ok = 0, failed = 0, accepted = 0, duplicates = 0}
    for _, thread in ipairs(threads) do
        table.insert(sent_by_thread, string.format('"%d":%d', thread:get("id"), thread:get("sent")))
        for key, _ in pairs(totals) do
            totals[key] = totals[key] + thread:get(key)
        end
    end
    local errors = summary.errors
    io.write(string.format(
        'WRK_RESULT {"requests":%d,"duration_us":%d,"ok":%d,"failed":%d,"accepted":%d,' ..
        '"duplicates":%d,"socket_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,' ..
        '"max_us":%d,"sent":{%s}}\n',
        summary.requests, summary.duration, totals.ok, totals.failed, totals.accepted,
        totals.duplicates, errors.connect + errors.read + errors.write, errors.timeout,
        latency:percentile(50), latency:percentile(99), latency.max,
        table.concat(sent_by_thread, ",")))
end
