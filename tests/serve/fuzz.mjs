// fuzz.mjs: hostile request bodies against a running vkllm serve.
//   node fuzz.mjs ROOT_URL API_KEY [ROUNDS]
// Valid requests mutated (bytes flipped, cut short, fields given other
// types, nested, repeated) and sent to every POST endpoint, a few at a time.
// Every answer must be 200, 400 or 413 with a JSON body (an error object for
// the errors), and the server must still answer /health and have no slot or
// queue entry left busy. Seeded: a failure prints its seed and body.
const [root, apiKey, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 300);
let seed = 12345;
function rand(n) { // xorshift32: the same bodies on every run
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed % n;
}
const pick = (a) => a[rand(a.length)];

const bases = [
    ['/v1/chat/completions', { model: 'm', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }], max_tokens: 2, stream: true }],
    ['/v1/completions', { prompt: 'Once upon a time', max_tokens: 3, stop: ['\n', 'x'], seed: 4, top_p: 0.5 }],
    ['/v1/completions', { prompt: ['The dog'], max_tokens: 2, stream: true, stream_options: { include_usage: true } }],
    ['/tokenize', { content: 'Hello world', add_special: true }],
    ['/detokenize', { tokens: [1, 403, 2] }],
    ['/apply-template', { messages: [{ role: 'user', content: 'Hi' }] }],
];
const weird = [null, true, false, 0, -1, 1e308, -1e-308, 2 ** 53, '', 'x'.repeat(300), '\u{1F600}', [], [[]], {}, { a: { b: {} } },
               [1, 'a', null], 'role', 'user', '\uFFFF', 1.5, '<s>', '[INST]'];

function mutateValue(v, depth = 0) {
    if (depth > 3 || rand(3) === 0) return pick(weird);
    if (Array.isArray(v)) {
        const a = v.map((x) => (rand(3) ? x : mutateValue(x, depth + 1)));
        if (rand(4) === 0) a.push(pick(weird));
        if (rand(6) === 0) a.length = 0;
        return a;
    }
    if (v && typeof v === 'object') {
        const o = { ...v };
        const keys = Object.keys(o);
        if (keys.length && rand(2)) o[pick(keys)] = mutateValue(o[pick(keys)], depth + 1);
        if (rand(4) === 0) delete o[pick(keys)];
        if (rand(4) === 0) o[pick(['n', 'tools', 'stream', 'max_tokens', 'temperature', 'stop', 'messages', 'prompt', 'logprobs', 'response_format', 'seed', 'top_k'])] = pick(weird);
        return o;
    }
    return pick(weird);
}

function body(base) {
    const v = mutateValue(base);
    // a reply without a limit runs to the end of the context: kept short
    if (v && typeof v === 'object' && !Array.isArray(v) && (v.max_tokens ?? null) === null) v.max_tokens = 3;
    let text = JSON.stringify(v);
    switch (rand(5)) {
    case 0: { // flip bytes
        const b = Buffer.from(text);
        for (let k = rand(4) + 1; k > 0; k--) b[rand(b.length)] = rand(256);
        return b;
    }
    case 1: return Buffer.from(text.slice(0, rand(text.length + 1))); // cut short
    case 2: return Buffer.from('['.repeat(rand(3000)) + text); // nested
    default: return Buffer.from(text);
    }
}

let failures = 0;
async function one(i) {
    const [path, base] = pick(bases);
    const data = body(base);
    const s = seed;
    let status, text;
    try {
        const r = await fetch(root + path, { method: 'POST', body: data,
            headers: { 'Authorization': `Bearer ${apiKey}`, 'Content-Type': 'application/json' } });
        status = r.status;
        text = await r.text();
    } catch (e) {
        status = 0;
        text = String(e);
    }
    const sse = text.startsWith('data: ');
    let ok = [200, 400, 413].includes(status);
    if (ok && !sse) {
        try {
            const j = JSON.parse(text);
            if (status !== 200) ok = typeof j.error?.message === 'string' && typeof j.error?.type === 'string';
        } catch {
            ok = false;
        }
    }
    if (ok && sse) ok = status === 200 && text.endsWith('data: [DONE]\n\n');
    if (!ok) {
        failures++;
        console.error(`FAIL: round ${i} (seed ${s}) ${path} ${JSON.stringify(data.toString().slice(0, 300))}: ${status} ${text.slice(0, 300)}`);
    }
}

for (let i = 0; i < rounds; i += 4)
    await Promise.all([0, 1, 2, 3].map((k) => one(i + k)));
const health = await fetch(`${root}/health`).then((r) => r.status).catch(() => 0);
if (health !== 200) { failures++; console.error(`FAIL: /health answered ${health} after the fuzzing`); }
const metrics = await fetch(`${root}/metrics`, { headers: { 'Authorization': `Bearer ${apiKey}` } }).then((r) => r.text());
for (const m of ['slots_busy', 'queue_length']) {
    const v = metrics.match(new RegExp(`^vkllm_${m} (\\S+)$`, 'm'))?.[1];
    if (v !== '0') { failures++; console.error(`FAIL: vkllm_${m} is ${v} after the fuzzing`); }
}
console.log(`fuzz.mjs: ${rounds} hostile bodies, ${failures} failures`);
process.exit(failures ? 1 : 0);
