/* hash.c: SipHash-1-3 (one compression round per word, three to finish) under
 * a per-process random key; see hash.h for why. */
#include "hash.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t rotl(uint64_t x, int b)
{
    return x << b | x >> (64 - b);
}

static void sip_round(struct hash_state *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13) ^ s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16) ^ s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21) ^ s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17) ^ s->v2;
    s->v2 = rotl(s->v2, 32);
}

static void compress(struct hash_state *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    s->v0 ^= m;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void hash_begin_keyed(struct hash_state *s, const uint8_t key[16])
{
    const uint64_t k0 = le64(key), k1 = le64(key + 8);
    *s = (struct hash_state){
        .v0 = k0 ^ 0x736f6d6570736575u,
        .v1 = k1 ^ 0x646f72616e646f6du,
        .v2 = k0 ^ 0x6c7967656e657261u,
        .v3 = k1 ^ 0x7465646279746573u,
    };
}

void hash_add(struct hash_state *s, const void *p, size_t n)
{
    const uint8_t *b = p;
    /* finish the word a previous piece started */
    while (n && s->count % 8) {
        s->tail |= (uint64_t)*b++ << (8 * (s->count++ % 8));
        n--;
        if (s->count % 8 == 0) {
            compress(s, s->tail);
            s->tail = 0;
        }
    }
    for (; n >= 8; b += 8, n -= 8, s->count += 8)
        compress(s, le64(b));
    for (; n; n--)
        s->tail |= (uint64_t)*b++ << (8 * (s->count++ % 8));
}

uint64_t hash_end(const struct hash_state *st)
{
    struct hash_state s = *st;
    compress(&s, s.tail | s.count << 56);
    s.v2 ^= 0xff;
    for (int i = 0; i < 3; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* ============================== The process's key ============================== */

static uint8_t process_key[16];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* getrandom without waiting: early in boot, before the kernel's pool is ready,
 * the key comes from the clock, the process id and an address instead (still
 * unknown to whoever made the file, if weaker). */
static void draw_key(void)
{
    if (getrandom(process_key, sizeof process_key, GRND_NONBLOCK) == (ssize_t)sizeof process_key)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t k[2] = {(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                     (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&ts};
    struct hash_state s;
    hash_begin_keyed(&s, (const uint8_t *)k);
    hash_add(&s, k, sizeof k);
    k[0] = hash_end(&s);
    hash_add(&s, k, sizeof k);
    k[1] = hash_end(&s);
    memcpy(process_key, k, sizeof process_key);
}

void hash_begin(struct hash_state *s)
{
    pthread_once(&key_once, draw_key);
    hash_begin_keyed(s, process_key);
}

uint64_t hash_bytes(const void *p, size_t n)
{
    struct hash_state s;
    hash_begin(&s);
    hash_add(&s, p, n);
    return hash_end(&s);
}
