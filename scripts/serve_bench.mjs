// serve_bench.mjs URL [N_CLIENTS] [TOKENS] [ROUNDS]: generated tokens per
// second of a running `vkllm serve`, for one streaming client and then for
// N_CLIENTS (default 4) at once, each sending one /v1/completions request of
// TOKENS (default 128) tokens, greedy, past the end-of-text token; ROUNDS
// (default 3) alternating pairs, with the ratio of each pair. Tokens are
// counted as the server's usage says; the time is the wall clock from the
// first request to the last reply.
//   vkllm serve -m tests/data/stories260K.gguf -np 4 --port 8090 &
//   node scripts/serve_bench.mjs http://127.0.0.1:8090 4 128 3
const [url = 'http://127.0.0.1:8080', nArg = '4', tokArg = '128', roundArg = '3'] =
    process.argv.slice(2);
const nClients = +nArg, maxTokens = +tokArg, rounds = +roundArg;

async function one(i) {
    const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({
            prompt: `Once upon a time ${i}`,
            max_tokens: maxTokens,
            temperature: 0,
            ignore_eos: true,
            stream: true,
            stream_options: {include_usage: true},
        }),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    let tokens = 0, buf = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
        buf += decoder.decode(chunk, {stream: true});
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
            const event = buf.slice(0, end);
            buf = buf.slice(end + 2);
            if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
            const j = JSON.parse(event.slice(6));
            if (j.usage) tokens = j.usage.completion_tokens;
        }
    }
    if (tokens !== maxTokens) throw new Error(`request ${i}: ${tokens} tokens, want ${maxTokens}`);
    return tokens;
}

async function rate(n) {
    const t0 = performance.now();
    const counts = await Promise.all(Array.from({length: n}, (_, i) => one(i)));
    return counts.reduce((a, b) => a + b, 0) / ((performance.now() - t0) / 1e3);
}

await rate(1); // warm-up: pipelines, caches
console.log(`| round | 1 client, tok/s | ${nClients} clients, tok/s in all | ratio |`);
console.log('|---|---|---|---|');
for (let r = 1; r <= rounds; r++) {
    const single = await rate(1), many = await rate(nClients);
    console.log(`| ${r} | ${single.toFixed(0)} | ${many.toFixed(0)} | ${(many / single).toFixed(2)} |`);
}
