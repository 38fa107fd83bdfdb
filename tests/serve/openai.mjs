// openai.mjs: the official `openai` npm client against a running vkllm serve.
//   node openai.mjs BASE_URL API_KEY VKLLM
// Greedy replies must equal `vkllm run`'s on the same prompt (the chat's
// rendered by the server's /apply-template): chat completion and completion,
// streaming and not; a burst of concurrent streaming clients each get their
// own exact reply, and so does every request of a load test of 8 clients x 20
// requests on the server's 4 slots (batched decode, a queue); a resent
// conversation decodes only its new turn.
import OpenAI from 'openai';
import { execFileSync } from 'node:child_process';

const [baseURL, apiKey, vkllm] = process.argv.slice(2);
const root = baseURL.replace(/\/v1$/, '');
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const N = 24; // tokens per reply
let failures = 0, checks = 0;
function check(ok, what) {
    checks++;
    if (!ok) {
        console.error(`FAIL: ${what}`);
        failures++;
    }
}

// `vkllm run`'s greedy continuation of PROMPT (it echoes the prompt, then
// the text and a newline)
function runReply(prompt, n = N) {
    const out = execFileSync(vkllm, ['run', '-p', prompt, '-n', String(n), '--temp', '0'],
                             { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    if (!out.startsWith(prompt) || !out.endsWith('\n')) throw new Error(`vkllm run: odd output ${JSON.stringify(out)}`);
    return out.slice(prompt.length, -1);
}

async function post(path, body) {
    const r = await fetch(root + path, {
        method: 'POST', headers: { 'Authorization': `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
    });
    return r.json();
}

async function metric(name) {
    const r = await fetch(`${root}/metrics`, { headers: { 'Authorization': `Bearer ${apiKey}` } });
    const m = (await r.text()).match(new RegExp(`^vkllm_${name} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
}

async function streamText(params) {
    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '', finish = null, usage = null, role = null;
    for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            if (c.delta.role) role = c.delta.role;
            text += c.delta.content ?? '';
            if (c.finish_reason) finish = c.finish_reason;
        }
    }
    return { text, finish, usage, role };
}

async function streamCompletion(prompt, n = N) {
    const stream = await client.completions.create({ model: 'm', prompt, max_tokens: n, temperature: 0, stream: true });
    let text = '', finish = null;
    for await (const chunk of stream) {
        for (const c of chunk.choices) {
            text += c.text;
            if (c.finish_reason) finish = c.finish_reason;
        }
    }
    return { text, finish };
}

// ---- the model list
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === 'stories260K.gguf', `models: ${JSON.stringify(models.data)}`);

// ---- chat completion, whole and streamed, equal to vkllm run on the rendering
const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a cat.' }];
const rendered = (await post('/apply-template', { messages })).prompt;
check(typeof rendered === 'string' && rendered.includes('Tell me about a cat.'), `apply-template: ${rendered}`);
const chatExpected = runReply(rendered);
const chat = await client.chat.completions.create({ model: 'stories260K.gguf', messages, max_tokens: N, temperature: 0 });
check(chat.object === 'chat.completion' && chat.choices.length === 1, 'chat: shape');
check(chat.choices[0].message.role === 'assistant', 'chat: role');
check(chat.choices[0].message.content === chatExpected,
      `chat: ${JSON.stringify(chat.choices[0].message.content)} != vkllm run's ${JSON.stringify(chatExpected)}`);
check(['length', 'stop'].includes(chat.choices[0].finish_reason), `chat: finish_reason ${chat.choices[0].finish_reason}`);
check(chat.usage.completion_tokens <= N && chat.usage.prompt_tokens > 0 &&
      chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, `chat: usage ${JSON.stringify(chat.usage)}`);
const streamed = await streamText({ model: 'x', messages, max_tokens: N, temperature: 0 });
check(streamed.text === chatExpected, `chat stream: ${JSON.stringify(streamed.text)} != ${JSON.stringify(chatExpected)}`);
check(streamed.role === 'assistant' && streamed.finish === chat.choices[0].finish_reason, `chat stream: role ${streamed.role}, finish ${streamed.finish}`);
check(streamed.usage && streamed.usage.completion_tokens === chat.usage.completion_tokens, `chat stream: usage ${JSON.stringify(streamed.usage)}`);

// ---- completion, whole and streamed
const prompts = ['Once upon a time', 'The little dog', 'Lily went to the park', 'Tom had a red ball'];
const expected = prompts.map((p) => runReply(p));
const comp = await client.completions.create({ model: 'm', prompt: prompts[0], max_tokens: N, temperature: 0 });
check(comp.object === 'text_completion' && comp.choices[0].text === expected[0],
      `completion: ${JSON.stringify(comp.choices[0].text)} != ${JSON.stringify(expected[0])}`);
check(comp.usage.completion_tokens === N && comp.choices[0].finish_reason === 'length', `completion: ${JSON.stringify(comp.usage)}`);
const cs = await streamCompletion(prompts[0]);
check(cs.text === expected[0] && cs.finish === 'length', `completion stream: ${JSON.stringify(cs)}`);

// ---- a stop string ends the reply before it, and is not part of it
const cut = expected[0].indexOf(' little');
if (cut > 0) {
    const st = await client.completions.create({ model: 'm', prompt: prompts[0], max_tokens: N, temperature: 0, stop: [' little'] });
    check(st.choices[0].text === expected[0].slice(0, cut) && st.choices[0].finish_reason === 'stop',
          `stop: ${JSON.stringify(st.choices[0])}`);
}

// ---- a resent conversation decodes only the new turn
const turn1 = [{ role: 'user', content: 'Tell me about a dog.' }];
const r1 = await client.chat.completions.create({ model: 'm', messages: turn1, max_tokens: N, temperature: 0 });
const turn2 = [...turn1, { role: 'assistant', content: r1.choices[0].message.content }, { role: 'user', content: 'And then?' }];
const before = await metric('prompt_tokens_processed_total');
const r2 = await client.chat.completions.create({ model: 'm', messages: turn2, max_tokens: N, temperature: 0 });
const processed = (await metric('prompt_tokens_processed_total')) - before;
const cached = r2.usage.prompt_tokens_details?.cached_tokens;
check(cached >= r1.usage.prompt_tokens, `resend: ${cached} cached tokens, the first prompt had ${r1.usage.prompt_tokens}`);
// (llama2's format puts a space before the reply that the model did not
// generate, so the cache matches up to the reply, not into it)
check(processed === r2.usage.prompt_tokens - cached && processed <= r2.usage.prompt_tokens - r1.usage.prompt_tokens,
      `resend: ${processed} prompt tokens processed of ${r2.usage.prompt_tokens}`);
console.log(`resend: prompt ${r2.usage.prompt_tokens} tokens, ${cached} cached, ${processed} processed`);

// ---- a burst: 4 clients x 5 streaming requests, each reply exact
async function clientRun(i, n, want = expected, tokens = N) {
    for (let k = 0; k < n; k++) {
        const r = await streamCompletion(prompts[i % 4], tokens);
        check(r.text === want[i % 4] && r.finish === 'length', `client ${i} request ${k}: ${JSON.stringify(r.text)}`);
    }
    return n * tokens;
}
let t0 = performance.now();
const single = await clientRun(0, 5);
const singleRate = single / ((performance.now() - t0) / 1e3);
t0 = performance.now();
const burst = (await Promise.all([0, 1, 2, 3].map((i) => clientRun(i, 5)))).reduce((a, b) => a + b, 0);
const burstRate = burst / ((performance.now() - t0) / 1e3);
console.log(`burst: 1 client ${singleRate.toFixed(1)} tokens/s, 4 clients ${burstRate.toFixed(1)} tokens/s in all`);
check((await metric('slots_busy')) === 0 && (await metric('queue_length')) === 0, 'burst: slots or queue left busy');

// ---- the load test: 8 clients x 20 streaming requests of 8 tokens, twice
// the slots: every step batches 4 and the other clients wait in the queue
const short = prompts.map((p) => runReply(p, 8));
t0 = performance.now();
const load = (await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => clientRun(i, 20, short, 8)))).reduce((a, b) => a + b, 0);
console.log(`load: 8 clients x 20 requests, ${load} tokens in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
check((await metric('slots_busy')) === 0 && (await metric('queue_length')) === 0, 'load: slots or queue left busy');

// ---- the client sees the server's errors as APIError with the status
try {
    await client.chat.completions.create({ model: 'm', messages, n: 2 });
    check(false, 'n=2 accepted');
} catch (e) {
    check(e.status === 400 && e.error?.param === 'n', `n=2: ${e.status} ${JSON.stringify(e.error)}`);
}

console.log(`openai.mjs: ${checks - failures}/${checks} checks passed`);
process.exit(failures ? 1 : 0);
