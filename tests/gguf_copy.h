/* gguf_copy.h: copying a tensor of an open GGUF into a vkllm_gguf_writer, for
 * the tests and tools that rewrite files. The writer takes the bytes at _write,
 * through vkllm_gguf_writer_add_tensor_fill, read from the file then (a
 * tensor's bytes are only reachable through vkllm_gguf_read). */
#ifndef VKLLM_TEST_GGUF_COPY_H
#define VKLLM_TEST_GGUF_COPY_H

#include "vkllm.h"

/* The first SIZE bytes of tensor T of G. Must live until the writer's _write. */
struct gguf_copy {
    const vkllm_gguf *g;
    const struct vkllm_gguf_tensor *t;
    uint64_t size;
};

static inline int gguf_copy_fill(void *user, void *buf, struct vkllm_error *err)
{
    const struct gguf_copy *c = user;
    return vkllm_gguf_read(c->g, c->t, 0, buf, c->size, err);
}

/* Adds C's tensor to W as NAME with shape NE (N_DIMS of them). */
static inline int gguf_copy_add(vkllm_gguf_writer *w, const char *name, uint32_t n_dims,
                                const uint64_t ne[4], struct gguf_copy *c)
{
    return vkllm_gguf_writer_add_tensor_fill(w, name, c->t->type, n_dims, ne, c->size,
                                             gguf_copy_fill, c);
}

#endif
