/* hash.h: the hash of every hash table in the engine (GGUF keys and tensor
 * names, token texts, BPE merges, the GGUF writer's names). Internal.
 *
 * The tables hold names from files anyone may make. With a hash an attacker
 * can compute (FNV-1a, say), a file of names that all land in one slot makes
 * each insertion walk every name before it: 100,000 such keys took 40 s to
 * open. SipHash-1-3 (Aumasson and Bernstein, as Rust's HashMap and CPython
 * use it) under a key drawn at random once per process makes the slots
 * unpredictable, so only chance collides. No table is ever walked in slot
 * order, so the random key changes no output.
 */
#ifndef VKLLM_HASH_H
#define VKLLM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A hash being computed over several pieces: hash_begin, hash_add for each
 * piece, hash_end. The pieces hash as their concatenation. */
struct hash_state {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;  /* the bytes not yet in a whole 8-byte word, little-endian */
    uint64_t count; /* bytes added so far */
};

/* Starts a hash under the process's key (random, drawn on first use). */
void hash_begin(struct hash_state *s);

/* Starts a hash under KEY: for tests, which compare with SipHash's own values. */
void hash_begin_keyed(struct hash_state *s, const uint8_t key[16]);

void hash_add(struct hash_state *s, const void *p, size_t n);
uint64_t hash_end(const struct hash_state *s);

/* The hash of N bytes at P under the process's key. */
uint64_t hash_bytes(const void *p, size_t n);

#endif
