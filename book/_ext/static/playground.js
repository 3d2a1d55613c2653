/* The course model in the browser: chapter 1's tokenizer and chapter 3's GPT, in plain
 * JavaScript, running the weights chapter 4 trained (book/playground.md; the files come from
 * tools/playground.py, and tools/check_site.py checks this code against tiktoken and PyTorch).
 *
 * Everything is computed here: no server, no other website. Activations live in
 * Float32Arrays (float32, as in PyTorch); dot products add up in JavaScript's float64.
 */
(() => {
  'use strict';

  const here = document.currentScript ? document.currentScript.src : location.href;
  const FILES = new URL('playground/', here);
  const CACHE_NAME = 'llm-from-scratch-playground';

  // ---- the tokenizer: byte-level BPE, merging by rank as tiktoken does ----------------------

  // GPT-2's pattern (llmscratch.tokenizer.GPT2_PATTERN). JavaScript's \s is not Unicode's
  // White_Space (it adds U+FEFF and lacks U+0085), so the property is named instead.
  const PIECES = new RegExp(
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+" +
    '|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+', 'gu');
  const utf8 = new TextEncoder();

  // Bytes as a "binary string" (one char per byte): a cheap Map key.
  const binary = bytes => {
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return s;
  };
  const bytesOf = bin => Uint8Array.from(bin, c => c.charCodeAt(0));

  class Tokenizer {
    constructor(rankFile, specials) {
      this.ranks = new Map();
      this.pieces = [];  // id -> binary string of its bytes
      for (const line of rankFile.split('\n')) {
        if (!line.trim()) continue;
        const [b64, rank] = line.split(' ');
        const bin = atob(b64);
        this.ranks.set(bin, Number(rank));
        this.pieces[Number(rank)] = bin;
      }
      this.specials = new Map(Object.entries(specials));
      for (const [text, id] of this.specials) this.pieces[id] = binary(utf8.encode(text));
      const names = [...this.specials.keys()].sort((a, b) => b.length - a.length);
      const escape = s => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      this.specialRe = names.length ? new RegExp(names.map(escape).join('|'), 'gu') : null;
      this.cache = new Map();
    }

    // One pre-tokenised piece: merge the adjacent pair of lowest rank, leftmost first.
    bpe(bin, out) {
      const whole = this.ranks.get(bin);
      if (whole !== undefined) { out.push(whole); return; }
      let ids = this.cache.get(bin);
      if (!ids) {
        const parts = [...bin];
        while (parts.length > 1) {
          let best = Infinity, at = -1;
          for (let i = 0; i < parts.length - 1; i++) {
            const rank = this.ranks.get(parts[i] + parts[i + 1]);
            if (rank !== undefined && rank < best) { best = rank; at = i; }
          }
          if (at < 0) break;
          parts.splice(at, 2, parts[at] + parts[at + 1]);
        }
        ids = parts.map(p => this.ranks.get(p));
        if (this.cache.size < 50000) this.cache.set(bin, ids);
      }
      out.push(...ids);
    }

    encodeOrdinary(text, out = []) {
      for (const match of text.matchAll(PIECES)) this.bpe(binary(utf8.encode(match[0])), out);
      return out;
    }

    // Special tokens written in the text count as themselves (tiktoken's allowed_special="all").
    encode(text) {
      const out = [];
      let start = 0;
      if (this.specialRe) {
        for (const match of text.matchAll(this.specialRe)) {
          this.encodeOrdinary(text.slice(start, match.index), out);
          out.push(this.specials.get(match[0]));
          start = match.index + match[0].length;
        }
      }
      return this.encodeOrdinary(text.slice(start), out);
    }

    bytes(id) { return bytesOf(this.pieces[id]); }
  }

  // ---- the model: chapter 3's GPT, forward pass with a KV cache ----------------------------

  const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

  // y[t, o] = b[o] + sum_i x[t, i] * W[o, i], W stored [out, in] as nn.Linear keeps it.
  // Four running sums instead of one: the additions no longer wait for each other, which
  // makes the loop several times faster (nIn is a multiple of four here).
  function linear(x, rows, W, bias, nIn, nOut, y = new Float32Array(rows * nOut), yRow = 0) {
    for (let t = 0; t < rows; t++) {
      const xo = t * nIn, yo = (yRow + t) * nOut;
      for (let o = 0; o < nOut; o++) {
        const wo = o * nIn;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let i = 0; i < nIn; i += 4) {
          s0 += x[xo + i] * W[wo + i];
          s1 += x[xo + i + 1] * W[wo + i + 1];
          s2 += x[xo + i + 2] * W[wo + i + 2];
          s3 += x[xo + i + 3] * W[wo + i + 3];
        }
        y[yo + o] = (bias === null ? 0 : bias[o]) + ((s0 + s1) + (s2 + s3));
      }
    }
    return y;
  }

  // GPT-2's LayerNorm: biased variance, eps 1e-5.
  function layerNorm(x, rows, n, scale, shift, eps = 1e-5) {
    const y = new Float32Array(rows * n);
    for (let t = 0; t < rows; t++) {
      const o = t * n;
      let mean = 0;
      for (let i = 0; i < n; i++) mean += x[o + i];
      mean /= n;
      let variance = 0;
      for (let i = 0; i < n; i++) variance += (x[o + i] - mean) ** 2;
      const inv = 1 / Math.sqrt(variance / n + eps);
      for (let i = 0; i < n; i++) y[o + i] = scale[i] * (x[o + i] - mean) * inv + shift[i];
    }
    return y;
  }

  class Model {
    constructor(header, buffer) {
      if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
        throw new Error('this browser is big-endian; the weight file is little-endian');
      }
      const c = header.config;
      Object.assign(this, {D: c.emb_dim, H: c.n_heads, L: c.n_layers, V: c.vocab_size,
                           C: c.context_length});
      this.hd = this.D / this.H;
      this.w = {};
      for (const t of header.tensors) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        if (t.dtype === 'int8') {
          // weight = int8 x its row's float32 scale, rounded to float32 on storing
          const [rows, cols] = t.shape;
          const q = new Int8Array(buffer, t.offset, n);
          const scale = new Float32Array(buffer, t.scale_offset, rows);
          const w = new Float32Array(n);
          for (let r = 0; r < rows; r++) {
            const s = scale[r], o = r * cols;
            for (let i = 0; i < cols; i++) w[o + i] = q[o + i] * s;
          }
          this.w[t.name] = w;
        } else if (t.dtype === 'float32') {
          this.w[t.name] = new Float32Array(buffer.slice(t.offset, t.offset + 4 * n));
        } else {
          throw new Error(`unknown tensor type ${t.dtype} for ${t.name}`);
        }
      }
      if (!this.w['out_head.weight']) this.w['out_head.weight'] = this.w['tok_emb.weight'];  // tied
    }

    newCache() {
      const size = this.C * this.D;
      return {length: 0, keys: Array.from({length: this.L}, () => new Float32Array(size)),
              values: Array.from({length: this.L}, () => new Float32Array(size))};
    }

    // ids: the new tokens, after cache.length cached ones. Returns the logits of the last new
    // token and, with {attention: true}, every head's weights [layer][head] as rows x keys.
    forward(ids, cache, {attention = false} = {}) {
      const {D, H, L, V, C, hd} = this, w = this.w;
      const T = ids.length, start = cache.length, end = start + T;
      if (T === 0) throw new Error('no tokens to run');
      if (end > C) throw new Error(`${end} tokens do not fit the context of ${C}`);
      const tok = w['tok_emb.weight'], pos = w['pos_emb.weight'];
      let x = new Float32Array(T * D);
      for (let t = 0; t < T; t++) {
        if (!(ids[t] >= 0 && ids[t] < V)) throw new Error(`token id ${ids[t]} out of range`);
        for (let i = 0; i < D; i++) x[t * D + i] = tok[ids[t] * D + i] + pos[(start + t) * D + i];
      }
      const maps = attention ? [] : null;
      const scale = 1 / Math.sqrt(hd);
      const scores = new Float64Array(end);
      for (let l = 0; l < L; l++) {
        const p = `blocks.${l}.`;
        const h = layerNorm(x, T, D, w[p + 'norm1.scale'], w[p + 'norm1.shift']);
        const q = linear(h, T, w[p + 'att.W_query.weight'], null, D, D);
        const K = cache.keys[l], Vc = cache.values[l];
        linear(h, T, w[p + 'att.W_key.weight'], null, D, D, K, start);
        linear(h, T, w[p + 'att.W_value.weight'], null, D, D, Vc, start);
        const context = new Float32Array(T * D);
        const layerMaps = attention ? [] : null;
        for (let head = 0; head < H; head++) {
          const off = head * hd;
          const map = attention ? new Float32Array(T * end) : null;
          for (let t = 0; t < T; t++) {
            const seen = start + t + 1;  // causal: this token and every earlier one
            const qo = t * D + off;
            let max = -Infinity;
            for (let j = 0; j < seen; j++) {
              let s = 0;
              const ko = j * D + off;
              for (let i = 0; i < hd; i++) s += q[qo + i] * K[ko + i];
              s = Math.fround(s * scale);
              scores[j] = s;
              if (s > max) max = s;
            }
            let total = 0;
            for (let j = 0; j < seen; j++) { scores[j] = Math.exp(scores[j] - max); total += scores[j]; }
            for (let j = 0; j < seen; j++) {
              const a = Math.fround(scores[j] / total);
              if (map) map[t * end + j] = a;
              const vo = j * D + off;
              for (let i = 0; i < hd; i++) context[qo + i] += a * Vc[vo + i];
            }
          }
          if (attention) layerMaps.push(map);
        }
        if (attention) maps.push(layerMaps);
        const out = linear(context, T, w[p + 'att.out_proj.weight'], w[p + 'att.out_proj.bias'],
                           D, D);
        for (let i = 0; i < x.length; i++) x[i] += out[i];
        const h2 = layerNorm(x, T, D, w[p + 'norm2.scale'], w[p + 'norm2.shift']);
        const wide = linear(h2, T, w[p + 'ff.layers.0.weight'], w[p + 'ff.layers.0.bias'],
                            D, 4 * D);
        for (let i = 0; i < wide.length; i++) {  // GELU, GPT-2's tanh form
          const v = wide[i];
          wide[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
        }
        const narrow = linear(wide, T, w[p + 'ff.layers.2.weight'], w[p + 'ff.layers.2.bias'],
                              4 * D, D);
        for (let i = 0; i < x.length; i++) x[i] += narrow[i];
      }
      cache.length = end;
      // only the last token's logits are needed: the next-token distribution
      const last = layerNorm(x.subarray((T - 1) * D), 1, D, w['final_norm.scale'],
                             w['final_norm.shift']);
      const logits = linear(last, 1, w['out_head.weight'], null, D, V);
      return {logits, attention: maps};
    }
  }

  // ---- choosing the next token ------------------------------------------------------------

  function argmax(a) {
    let best = 0;
    for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
    return best;
  }

  // A small seeded generator (mulberry32): the same seed gives the same text.
  function randomFrom(seed) {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x6D2B79F5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function softmax(logits, temperature = 1) {
    const max = logits[argmax(logits)];
    const p = new Float64Array(logits.length);
    let total = 0;
    for (let i = 0; i < p.length; i++) { p[i] = Math.exp((logits[i] - max) / temperature); total += p[i]; }
    for (let i = 0; i < p.length; i++) p[i] /= total;
    return p;
  }

  // Temperature 0 is greedy; otherwise keep the top k (0: all), then the smallest set of
  // most likely tokens whose probability reaches top_p, and draw from what is left.
  function choose(logits, {temperature, topK, topP}, random) {
    if (!(temperature > 0)) return argmax(logits);
    const p = softmax(logits, temperature);
    const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]);
    const k = topK > 0 ? Math.min(topK, order.length) : order.length;
    let kept = 0, mass = 0;
    while (kept < k && (kept === 0 || mass < topP)) mass += p[order[kept++]];
    let r = random() * mass;
    for (let i = 0; i < kept; i++) {
      r -= p[order[i]];
      if (r <= 0) return order[i];
    }
    return order[kept - 1];
  }

  // ---- loading, once: the header, the tokenizer, the weights (kept in the Cache API) -------

  async function fetchChecked(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url.pathname.split('/').pop()}: HTTP ${response.status}`);
    return response;
  }

  // The weight file's name carries its hash, so a copy kept in the browser never goes stale.
  async function weightFile(url) {
    let cache = null;
    try { cache = await caches.open(CACHE_NAME); } catch (e) { cache = null; }
    let response = cache ? await cache.match(url) : undefined;
    const fromCache = !!response;
    if (!response) {
      response = await fetchChecked(url);
      if (cache) await cache.put(url, response.clone()).catch(() => {});
    }
    return {buffer: await response.arrayBuffer(), fromCache};
  }

  async function sha256(buffer) {
    if (!(window.crypto && crypto.subtle)) return null;  // only on http:// pages elsewhere
    const digest = await crypto.subtle.digest('SHA-256', buffer);
    return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
  }

  async function load() {
    const started = performance.now();
    const header = await (await fetchChecked(new URL('course-gpt.json', FILES))).json();
    const [rankText, weights] = await Promise.all([
      fetchChecked(new URL(header.tokenizer.file, FILES)).then(r => r.text()),
      weightFile(new URL(header.weights.file, FILES)),
    ]);
    const downloaded = performance.now();
    const digest = await sha256(weights.buffer);
    if (digest !== null && digest !== header.weights.sha256) {
      if (weights.fromCache) await caches.delete(CACHE_NAME);
      throw new Error(`the weight file's SHA-256 is ${digest.slice(0, 12)}…, not the ` +
                      `${header.weights.sha256.slice(0, 12)}… its header names: reload the page`);
    }
    const tokenizer = new Tokenizer(rankText, header.tokenizer.special_tokens);
    const model = new Model(header, weights.buffer);
    return {header, tokenizer, model, fromCache: weights.fromCache, verified: digest !== null,
            loadMs: performance.now() - started, startedAt: started,
            downloadMs: downloaded - started};
  }

  // ---- the page -----------------------------------------------------------------------------

  const $ = id => document.getElementById(id);
  // a new element with a class and, optionally, its text
  function element(tag, className, text = null) {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== null) node.textContent = text;
    return node;
  }
  const nf = (x, digits = 0) => x.toLocaleString('en', {maximumFractionDigits: digits,
                                                         minimumFractionDigits: digits});
  const megabytes = bytes => `${nf(bytes / 1e6, 1)} MB`;

  // How a token's bytes look on screen: whitespace made visible, broken UTF-8 as <0xNN>.
  const strict = new TextDecoder('utf-8', {fatal: true});
  function shown(bytes) {
    let text;
    try { text = strict.decode(bytes); } catch (e) {
      return [...bytes].map(b => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).join('');
    }
    return text.replace(/ /g, '␣').replace(/\n/g, '↵').replace(/\t/g, '⇥');
  }

  // Runs of tokens whose bytes together make whole characters (an emoji can take several).
  function groups(tokenizer, ids) {
    const out = [];
    let pending = [], bytes = [];
    for (const id of ids) {
      pending.push(id);
      bytes.push(...tokenizer.bytes(id));
      try {
        out.push({ids: pending, text: strict.decode(new Uint8Array(bytes))});
        pending = []; bytes = [];
      } catch (e) { /* not yet a whole character: wait for the next token */ }
    }
    if (pending.length) out.push({ids: pending, text: new TextDecoder().decode(new Uint8Array(bytes))});
    return out;
  }

  function setup(state) {
    const {header, tokenizer, model} = state;
    const root = $('course-playground');
    const status = $('pg-status');
    const prompt = $('pg-prompt');
    const layer = $('pg-layer'), head = $('pg-head');
    for (let l = 0; l < model.L; l++) layer.add(new Option(`layer ${l + 1}`, l));
    for (let h = 0; h < model.H; h++) head.add(new Option(`head ${h + 1}`, h));

    const cost = header.int8_cost;
    $('pg-about').textContent =
      `${nf(header.parameters)} parameters: ${model.L} layers of ${model.H} heads, ` +
      `${model.D}-wide vectors, a context of ${model.C} tokens, ${nf(model.V)} tokens in the ` +
      `vocabulary. Weights as int8 rows with a scale each: ${megabytes(header.weights.bytes)} ` +
      `(the float32 original: ${megabytes(header.source.bytes)}); the int8 format moves a ` +
      `logit by at most ${nf(cost.max_logit_error_all_positions, 2)} on the ` +
      `${header.check_prompts} test prompts.`;

    let analysed = null;  // {ids, attention, logits} of the prompt as it stands
    let running = false;

    function promptIds() {
      const ids = tokenizer.encode(prompt.value);
      return ids.length > model.C - 1 ? ids.slice(ids.length - (model.C - 1)) : ids;
    }

    function renderTokens(ids, full) {
      const list = $('pg-tokens');
      list.replaceChildren(...ids.map((id, i) => {
        const li = element('li', `pg-token pg-c${i % 4}`);
        li.append(element('span', 'pg-piece', shown(tokenizer.bytes(id))),
                  element('span', 'pg-id', id));
        return li;
      }));
      const cut = full > ids.length ? ` (the model sees only the last ${ids.length})` : '';
      $('pg-token-count').textContent =
        `${full} token${full === 1 ? '' : 's'} for ${nf(utf8.encode(prompt.value).length)} bytes${cut}.`;
    }

    function renderBars(logits, chosen = null) {
      const p = softmax(logits);
      const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, 10);
      const top = p[order[0]];
      $('pg-bars').replaceChildren(...order.map(id => {
        const li = element('li', id === chosen ? 'pg-chosen' : '');
        const track = element('span', 'pg-track');
        const bar = element('span', 'pg-bar');
        bar.style.width = `${(100 * p[id] / top).toFixed(1)}%`;
        track.append(bar);
        li.append(element('span', 'pg-bar-label', shown(tokenizer.bytes(id))),
                  element('span', 'pg-id', id), track,
                  element('span', 'pg-pct', `${(100 * p[id]).toFixed(1)}%`));
        return li;
      }));
    }

    function analyse() {
      if (running) return;
      const all = tokenizer.encode(prompt.value);
      const ids = promptIds();
      renderTokens(ids, all.length);
      if (!ids.length) {
        $('pg-bars').replaceChildren();
        analysed = null;
        drawHeatmap();
        return;
      }
      const {logits, attention} = model.forward(ids, model.newCache(), {attention: true});
      analysed = {ids, logits, attention};
      renderBars(logits);
      drawHeatmap();
    }

    // -- the heat map: rows are tokens, columns the tokens they look at -------------------
    const canvas = $('pg-heatmap');
    let cell = {row: 0, col: 0};
    let geometry = {gutter: 0, size: 1};  // of the map as last drawn, for clicks

    function drawHeatmap() {
      const ctx = canvas.getContext('2d');
      const width = canvas.parentElement.clientWidth || 300;
      const ratio = window.devicePixelRatio || 1;
      if (!analysed) {
        canvas.width = width * ratio; canvas.height = 40 * ratio;
        canvas.style.width = `${width}px`; canvas.style.height = '40px';
        canvas.setAttribute('aria-label', 'Attention heat map: type a prompt to see one.');
        $('pg-cell').textContent = '';
        return;
      }
      const {ids} = analysed, n = ids.length;
      const map = analysed.attention[+layer.value][+head.value];
      const labels = n <= 40;
      const gutter = labels ? Math.min(90, Math.round(width * 0.28)) : 0;
      const size = Math.max(1, Math.min(40, Math.floor((width - gutter) / n)));
      const side = gutter + size * n;
      canvas.width = side * ratio; canvas.height = side * ratio;
      canvas.style.width = `${side}px`; canvas.style.height = `${side}px`;
      geometry = {gutter, size};
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      const css = getComputedStyle(document.documentElement);
      const ink = css.getPropertyValue('--pst-color-text-base').trim() || '#222';
      ctx.clearRect(0, 0, side, side);
      for (let r = 0; r < n; r++) {
        for (let c = 0; c <= r; c++) {
          const a = map[r * n + c];
          ctx.fillStyle = `rgba(32, 96, 200, ${Math.max(a, 0.03)})`;
          ctx.fillRect(gutter + c * size, gutter + r * size, size, size);
        }
      }
      if (labels) {
        ctx.fillStyle = ink;
        ctx.font = `${Math.min(12, Math.max(8, size - 2))}px monospace`;
        ctx.textBaseline = 'middle';
        for (let r = 0; r < n; r++) {
          const text = shown(tokenizer.bytes(ids[r])).slice(0, 10);
          ctx.textAlign = 'right';
          ctx.fillText(text, gutter - 4, gutter + (r + 0.5) * size, gutter - 6);
          ctx.save();
          ctx.translate(gutter + (r + 0.5) * size, gutter - 4);
          ctx.rotate(-Math.PI / 2);
          ctx.textAlign = 'left';
          ctx.fillText(text, 0, 0, gutter - 6);
          ctx.restore();
        }
      }
      cell.row = Math.min(cell.row, n - 1);
      cell.col = Math.min(cell.col, cell.row);
      ctx.strokeStyle = '#d03030';
      ctx.lineWidth = 2;
      ctx.strokeRect(gutter + cell.col * size, gutter + cell.row * size, size, size);
      // the text alternative: what the picture shows, and its strongest link
      let best = [1, 0, 0];
      for (let r = 1; r < n; r++) {
        for (let c = 0; c <= r; c++) if (map[r * n + c] > best[2] && c !== r) best = [r, c, map[r * n + c]];
      }
      const name = i => `“${shown(tokenizer.bytes(ids[i]))}” (token ${i + 1})`;
      canvas.setAttribute('aria-label',
        `Attention heat map of layer ${+layer.value + 1}, head ${+head.value + 1} over ${n} ` +
        `tokens: row i shows how token i spreads its attention over itself and the tokens ` +
        `before it; darker is more. ` +
        (n > 1 ? `Its strongest link to an earlier token: ${name(best[0])} looks at ` +
                 `${name(best[1])} with weight ${best[2].toFixed(2)}.` : ''));
      $('pg-cell').textContent =
        `${name(cell.row)} gives ${name(cell.col)} weight ${map[cell.row * n + cell.col].toFixed(3)}.`;
      state.heatmapCells = {layer: +layer.value, head: +head.value, n};
    }

    canvas.addEventListener('keydown', event => {
      if (!analysed) return;
      const n = analysed.ids.length;
      const moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
      if (event.key in moves) {
        const [dr, dc] = moves[event.key];
        cell.row = Math.max(0, Math.min(n - 1, cell.row + dr));
        cell.col = Math.max(0, Math.min(cell.row, cell.col + dc));
      } else if (event.key === 'Home') {
        cell.col = 0;
      } else if (event.key === 'End') {
        cell.col = cell.row;
      } else {
        return;
      }
      event.preventDefault();
      drawHeatmap();
    });
    canvas.addEventListener('click', event => {
      if (!analysed) return;
      const box = canvas.getBoundingClientRect(), n = analysed.ids.length;
      const {gutter, size} = geometry;
      const r = Math.floor((event.clientY - box.top - gutter) / size);
      const c = Math.floor((event.clientX - box.left - gutter) / size);
      if (r >= 0 && r < n && c >= 0 && c <= r) { cell = {row: r, col: c}; drawHeatmap(); }
    });
    layer.addEventListener('change', drawHeatmap);
    head.addEventListener('change', drawHeatmap);
    let resize = null;
    window.addEventListener('resize', () => { clearTimeout(resize); resize = setTimeout(drawHeatmap, 150); });

    let typing = null;
    prompt.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(analyse, 150); });

    // -- generation, one token at a time --------------------------------------------------
    const output = $('pg-output');
    const button = $('pg-generate'), stop = $('pg-stop');

    function settings() {
      const number = (id, fallback) => { const v = Number($(id).value); return Number.isFinite(v) ? v : fallback; };
      return {temperature: number('pg-temperature', 1), topK: Math.round(number('pg-topk', 0)),
              topP: Math.min(1, Math.max(0.01, number('pg-topp', 1))),
              seed: Math.round(number('pg-seed', 0)),
              count: Math.max(1, Math.min(model.C, Math.round(number('pg-count', 40))))};
    }
    for (const id of ['pg-temperature', 'pg-topp']) {
      const input = $(id), out = $(`${id}-value`);
      const show = () => { out.textContent = Number(input.value).toFixed(2); };
      input.addEventListener('input', show);
      show();
    }

    function renderOutput(promptText, ids) {
      const spans = groups(tokenizer, ids).map((g, i) => {
        const span = element('span', `pg-new pg-c${i % 4}`, g.text);
        span.title = `token id${g.ids.length > 1 ? 's' : ''} ${g.ids.join(', ')}`;
        return span;
      });
      output.replaceChildren(element('span', 'pg-given', promptText), ...spans);
    }

    async function generate() {
      if (running) return;
      let ids = promptIds();
      if (!ids.length) { status.textContent = 'Type a prompt first.'; prompt.focus(); return; }
      const opts = settings();
      // leave room in the context for the tokens asked for: keep the prompt's end
      const room = Math.max(1, model.C - opts.count);
      const cut = ids.length > room ? ` from the prompt's last ${room} tokens` : '';
      if (cut) ids = ids.slice(ids.length - room);
      running = true;
      button.disabled = true; stop.disabled = false;
      const random = randomFrom(opts.seed);
      const cache = model.newCache();
      const made = [];
      const started = performance.now();
      let logits = model.forward(ids, cache).logits;
      let stopped = '';
      status.textContent = 'Generating…';
      for (let step = 0; step < opts.count; step++) {
        const next = choose(logits, opts, random);
        made.push(next);
        renderBars(logits, next);
        renderOutput(prompt.value, made);
        if (step === 0) state.firstTokenAt = performance.now();
        if (!running) { stopped = ' (stopped)'; break; }
        if (cache.length >= model.C) { stopped = ` (the context of ${model.C} tokens is full)`; break; }
        if (step + 1 < opts.count) {
          await new Promise(resolve => setTimeout(resolve, 0));  // let the page draw
          logits = model.forward([next], cache).logits;
        }
      }
      const seconds = (performance.now() - started) / 1000;
      state.lastRun = {tokens: made.length, seconds, ids: made};
      $('pg-speed').textContent = `${made.length} tokens in ${nf(seconds, 2)} s ` +
        `(${nf(made.length / seconds, 0)} tokens/s, prompt included)${stopped}.`;
      status.textContent = `Generated ${made.length} tokens${cut}${stopped}.`;
      running = false;
      button.disabled = false; stop.disabled = true;
    }
    button.addEventListener('click', generate);
    stop.addEventListener('click', () => { running = false; });
    prompt.addEventListener('keydown', event => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); generate(); }
    });

    analyse();
    root.classList.add('pg-ready');
    button.disabled = false;
    const transfer = performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
      .reduce((sum, e) => sum + (e.transferSize || 0), 0);
    status.textContent = `Model ready in ${nf(state.loadMs / 1000, 2)} s ` +
      (state.fromCache ? '(weights from this browser’s cache' : '(weights downloaded') +
      (state.verified ? ', SHA-256 checked)' : ')') +
      `; this page has transferred ${megabytes(transfer)} so far.`;
    state.readyAt = performance.now();
  }

  // ---- the interface the browser check uses (tools/check_site.py) ------------------------

  // The script loads asynchronously: the model may be ready before the page is parsed.
  const parsed = document.readyState === 'loading'
    ? new Promise(resolve => document.addEventListener('DOMContentLoaded', resolve)) : null;
  const ready = load().then(async state => {
    await parsed;
    window.coursePlayground.state = state;
    if (document.getElementById('course-playground')) setup(state);
    return state;
  }).catch(async error => {
    await parsed;
    const status = document.getElementById('pg-status');
    if (status) status.textContent = `The model could not be loaded: ${error.message}`;
    throw error;
  });

  window.coursePlayground = {
    ready,
    encode: text => window.coursePlayground.state.tokenizer.encode(text),
    logits: ids => Array.from(window.coursePlayground.state.model.forward(
      ids, window.coursePlayground.state.model.newCache()).logits),
    greedy(ids, n) {
      const model = window.coursePlayground.state.model, cache = model.newCache();
      let logits = model.forward(ids, cache).logits;
      const out = [];
      for (let i = 0; i < n; i++) {
        out.push(argmax(logits));
        if (i + 1 < n) logits = model.forward([out[i]], cache).logits;
      }
      return out;
    },
    attention(ids, layer, head) {
      const model = window.coursePlayground.state.model;
      const map = model.forward(ids, model.newCache(), {attention: true}).attention[layer][head];
      const n = ids.length;
      return Array.from({length: n}, (_, r) => Array.from(map.subarray(r * n, r * n + n)));
    },
  };
})();
