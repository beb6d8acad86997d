// Solves a rushgate proof-of-work puzzle (GET /api/v1/challenge, kind "pow") in the browser.
//
//   const spec = await (await fetch("/api/v1/challenge?action=signup")).json();
//   const answer = await rushgatePow.solve(spec.params);
//   fetch("/api/v1/applicants", {method: "POST", headers: {"X-Rushgate-Challenge": answer}, ...});
//
// The work: a decimal nonce such that sha256(challenge + nonce) starts with `difficulty`
// zero bits. challenge (32 hex characters) + nonce (at most 20 digits) is at most 52
// bytes, so every hash is one SHA-256 block: computed here synchronously, several times
// faster than one WebCrypto promise per attempt. The loop yields to the page every
// 20,000 attempts so it stays responsive.
(function (global) {
  "use strict";

  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const H0 = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ];
  const w = new Uint32Array(64);
  const block = new Uint8Array(64);
  const out = new Uint32Array(8);

  function rotr(x, n) {
    return (x >>> n) | (x << (32 - n));
  }

  // SHA-256 of `length` (at most 55) ASCII bytes already in `block`; the digest in `out`.
  function digestOneBlock(length) {
    block.fill(0, length);
    block[length] = 0x80;
    const bits = length * 8;
    block[62] = bits >>> 8;
    block[63] = bits & 0xff;
    for (let i = 0; i < 16; i++) {
      w[i] = (block[4 * i] << 24) | (block[4 * i + 1] << 16) | (block[4 * i + 2] << 8) | block[4 * i + 3];
    }
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, h] = H0;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    out[0] = (H0[0] + a) | 0; out[1] = (H0[1] + b) | 0; out[2] = (H0[2] + c) | 0; out[3] = (H0[3] + d) | 0;
    out[4] = (H0[4] + e) | 0; out[5] = (H0[5] + f) | 0; out[6] = (H0[6] + g) | 0; out[7] = (H0[7] + h) | 0;
  }

  function leadingZeroBits() {
    let bits = 0;
    for (let i = 0; i < 8; i++) {
      if (out[i] === 0) { bits += 32; continue; }
      return bits + Math.clz32(out[i]);
    }
    return bits;
  }

  // Tries nonces start .. start+count-1; returns the first that solves, or -1.
  function search(challenge, difficulty, start, count) {
    for (let i = 0; i < challenge.length; i++) block[i] = challenge.charCodeAt(i);
    for (let nonce = start; nonce < start + count; nonce++) {
      const digits = String(nonce);
      for (let i = 0; i < digits.length; i++) block[challenge.length + i] = digits.charCodeAt(i);
      digestOneBlock(challenge.length + digits.length);
      if (leadingZeroBits() >= difficulty) return nonce;
    }
    return -1;
  }

  function check(params) {
    if (!/^[0-9a-f]{32}$/.test(params.challenge) || !(params.difficulty >= 1 && params.difficulty <= 64)) {
      throw new Error("not a rushgate proof-of-work puzzle");
    }
  }

  // The answer for X-Rushgate-Challenge: "<puzzle>.<nonce>".
  function solveSync(params) {
    check(params);
    return params.puzzle + "." + search(params.challenge, params.difficulty, 0, Number.MAX_SAFE_INTEGER);
  }

  async function solve(params, step = 20000) {
    check(params);
    for (let start = 0; ; start += step) {
      const nonce = search(params.challenge, params.difficulty, start, step);
      if (nonce >= 0) return params.puzzle + "." + nonce;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  global.rushgatePow = { solve, solveSync, search };
})(typeof self !== "undefined" ? self : this);
