/* vkllm.h: run GGUF language models on any Vulkan device.
 *
 * A program uses the library in five steps, each with a create/destroy pair:
 *
 *   vkllm_context_create   picks a Vulkan device (--device, VKLLM_DEVICE, or the
 *                          discrete GPU with most memory, then integrated, then CPU)
 *   vkllm_model_load       reads a GGUF file, checks every tensor and that the
 *                          weights fit the device's free memory, uploads them
 *                          and builds the tokenizer
 *   vkllm_session_create   checks, then allocates the KV cache and activations
 *                          for one conversation and records the layer graph once
 *                          (vkllm_memory_needs says how much each takes)
 *   vkllm_tokenize         text -> token ids; vkllm_session_decode runs them and
 *                          leaves logits; vkllm_sampler_sample picks the next one
 *   vkllm_token_to_piece   token id -> bytes of text
 *
 * Above them, vkllm_stream turns sampled tokens into printable text (whole
 * UTF-8 characters, end-of-generation tokens, stop strings), and vkllm_chat
 * keeps a conversation: messages, the chat template, and the tokens of it
 * already in a session's KV cache (vkllm_session_truncate cuts that back).
 *
 * The GGUF reader and writer are public too: `vkllm info` and the test tools use
 * them. Everything here is plain C11. The library never prints and never exits:
 * every fallible call returns VKLLM_OK (0) or a negative enum vkllm_status, and
 * fills the optional struct vkllm_error with one line saying what went wrong
 * (for files: "PATH: what is wrong"). Destroy functions accept NULL.
 */
#ifndef VKLLM_H
#define VKLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================== Errors ============================== */

enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_E_INVALID = -1,       /* a bad argument from the caller */
    VKLLM_E_IO = -2,            /* a file could not be opened, read or written */
    VKLLM_E_FORMAT = -3,        /* a file is malformed or truncated */
    VKLLM_E_UNSUPPORTED = -4,   /* well-formed, but not something vkllm runs yet */
    VKLLM_E_NOMEM = -5,         /* host memory ran out */
    VKLLM_E_VULKAN = -6,        /* a Vulkan call failed */
    VKLLM_E_NO_DEVICE = -7,     /* no Vulkan driver, or no device matching the request */
    VKLLM_E_DEVICE_MEMORY = -8, /* the model or context does not fit in device memory */
    VKLLM_E_CONTEXT_FULL = -9,  /* more tokens than the session's context holds */
    VKLLM_E_NOT_FOUND = -10,    /* an optional GGUF key is absent (not an error in itself) */
    VKLLM_E_NUMERIC = -11,      /* the model computed NaN or infinite logits */
    VKLLM_E_TOO_LONG = -12,     /* text the pre-tokenizer's regex bounds cannot split */
};

/* Details of the last failure. msg is one line, no trailing newline, safe to
 * print (made by vkllm_printable); a longer message loses its middle, marked
 * "...", so that the reason at its end survives a long file name. */
struct vkllm_error {
    int code;
    char msg[512];
};

/* Short fixed text for a status code ("malformed file", ...). */
const char *vkllm_strerror(int code);

/* Formats a one-line message into ERR (which may be NULL; the text is made
 * printable, and a long one keeps its start and its end) and returns CODE, so a
 * failing path reads `return vkllm_fail(err, VKLLM_E_FORMAT, ...)`. */
int vkllm_fail(struct vkllm_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Copies LEN bytes of SRC, which may come from a file (key and tensor names,
 * strings), into DST (CAP bytes, always NUL-terminated if CAP > 0) so that a
 * terminal shows them as they are: valid UTF-8 passes; control characters
 * (C0 including newline and tab, DEL, C1), line separators, format
 * characters (General_Category Cf: bidirectional overrides, zero-width space,
 * TAG characters, ...; not ZWJ and ZWNJ, nor a flag's tag sequence),
 * noncharacters and bytes that are not valid UTF-8 become "\xNN", one escape
 * per byte. A backslash is kept, so escaping escaped text changes nothing. Never
 * cuts a character or an escape in two. Returns how many bytes of SRC it
 * took: LEN when everything fitted; 4 * LEN + 1 bytes of DST always suffice. */
size_t vkllm_printable(char *dst, size_t cap, const char *src, size_t len);
/* The same for running text (generated tokens, a rendered template) shown on
 * a terminal: newlines and tabs pass as they are, everything else as above. */
size_t vkllm_printable_text(char *dst, size_t cap, const char *src, size_t len);

/* Writes LEN bytes of DATA to PATH so that PATH is always either the old file
 * or the whole new one: a temporary file beside it (.vkllm.tmp-XXXXXX beside
 * the file a symbolic link names, when PATH is one), fsync, rename. On failure
 * PATH is untouched and no temporary file is left (a process killed mid-write
 * leaves one, which readers must ignore). */
int vkllm_write_file(const char *path, const void *data, size_t len, struct vkllm_error *err);

/* ============================== Tensor types ============================== */

/* ggml's type ids, as stored in GGUF files. */
enum vkllm_type {
    VKLLM_TYPE_F32 = 0,
    VKLLM_TYPE_F16 = 1,
    VKLLM_TYPE_Q4_0 = 2,
    VKLLM_TYPE_Q4_1 = 3,
    VKLLM_TYPE_Q5_0 = 6,
    VKLLM_TYPE_Q5_1 = 7,
    VKLLM_TYPE_Q8_0 = 8,
    VKLLM_TYPE_Q8_1 = 9,
    VKLLM_TYPE_Q2_K = 10,
    VKLLM_TYPE_Q3_K = 11,
    VKLLM_TYPE_Q4_K = 12,
    VKLLM_TYPE_Q5_K = 13,
    VKLLM_TYPE_Q6_K = 14,
    VKLLM_TYPE_Q8_K = 15,
    VKLLM_TYPE_IQ2_XXS = 16,
    VKLLM_TYPE_IQ2_XS = 17,
    VKLLM_TYPE_IQ3_XXS = 18,
    VKLLM_TYPE_IQ1_S = 19,
    VKLLM_TYPE_IQ4_NL = 20,
    VKLLM_TYPE_IQ3_S = 21,
    VKLLM_TYPE_IQ2_S = 22,
    VKLLM_TYPE_IQ4_XS = 23,
    VKLLM_TYPE_I8 = 24,
    VKLLM_TYPE_I16 = 25,
    VKLLM_TYPE_I32 = 26,
    VKLLM_TYPE_I64 = 27,
    VKLLM_TYPE_F64 = 28,
    VKLLM_TYPE_IQ1_M = 29,
    VKLLM_TYPE_BF16 = 30,
    VKLLM_TYPE_TQ1_0 = 34,
    VKLLM_TYPE_TQ2_0 = 35,
    VKLLM_TYPE_MXFP4 = 39,
    VKLLM_TYPE_NVFP4 = 40,
    VKLLM_TYPE_Q1_0 = 41,
    VKLLM_TYPE_Q2_0 = 42,
    VKLLM_TYPE_COUNT = 43 /* one past the largest id */
};

struct vkllm_type_info {
    const char *name;     /* "Q4_0" */
    uint32_t block_size;  /* elements per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
};

/* Size information for a type id, or NULL for an id ggml does not define. */
const struct vkllm_type_info *vkllm_type_info(uint32_t type);

/* ============================== GGUF reader ============================== */

/* A GGUF file, checked: every count, offset, size and string length was
 * validated against the file size when it was opened, so the accessors below
 * never read outside it. Its metadata and tensor infos are read into memory at
 * open; tensor data stays in the file, read on demand by vkllm_gguf_read (so a
 * file changed while it is open gives an error, not a crash). */
typedef struct vkllm_gguf vkllm_gguf;

enum vkllm_gguf_type {
    VKLLM_GGUF_UINT8 = 0,
    VKLLM_GGUF_INT8 = 1,
    VKLLM_GGUF_UINT16 = 2,
    VKLLM_GGUF_INT16 = 3,
    VKLLM_GGUF_UINT32 = 4,
    VKLLM_GGUF_INT32 = 5,
    VKLLM_GGUF_FLOAT32 = 6,
    VKLLM_GGUF_BOOL = 7,
    VKLLM_GGUF_STRING = 8,
    VKLLM_GGUF_ARRAY = 9,
    VKLLM_GGUF_UINT64 = 10,
    VKLLM_GGUF_INT64 = 11,
    VKLLM_GGUF_FLOAT64 = 12,
    VKLLM_GGUF_TYPE_COUNT
};

/* A string inside the file's metadata: not NUL-terminated, may contain any bytes. */
struct vkllm_gguf_str {
    const char *ptr;
    uint64_t len;
};

struct vkllm_gguf_kv {
    struct vkllm_gguf_str key;
    enum vkllm_gguf_type type;
    enum vkllm_gguf_type arr_type; /* element type when type == ARRAY, else TYPE_COUNT */
    uint64_t arr_len;              /* element count when type == ARRAY, else 1 */
    /* the value as stored, unaligned: a scalar's bytes, a string's uint64 length
     * (its bytes follow), an array's first element */
    const uint8_t *data;
    const uint64_t *str_offsets; /* string arrays: offset of element i from data */
};

struct vkllm_gguf_tensor {
    struct vkllm_gguf_str name;
    uint32_t n_dims; /* 1..4 */
    uint32_t type;   /* enum vkllm_type */
    uint64_t ne[4];  /* elements per dimension, ne[0] contiguous; unused ones are 1 */
    uint64_t offset; /* from the start of the file, aligned to the file's alignment */
    uint64_t size;   /* bytes; read them with vkllm_gguf_read */
};

/* Reads and checks PATH's metadata, and keeps the file open for its tensor
 * data. Tensors must be packed in order, each padded to the alignment (as
 * llama.cpp writes them). On failure *out is NULL and err says "PATH: reason". */
int vkllm_gguf_open(const char *path, vkllm_gguf **out, struct vkllm_error *err);

/* Checks a GGUF image already in memory (which must outlive the result), naming
 * it NAME in messages. The pure parser behind vkllm_gguf_open; fuzzed. */
int vkllm_gguf_parse(const void *data, size_t size, const char *name, vkllm_gguf **out,
                     struct vkllm_error *err);

void vkllm_gguf_close(vkllm_gguf *g);

uint32_t vkllm_gguf_version(const vkllm_gguf *g);   /* 2 or 3 */
uint64_t vkllm_gguf_alignment(const vkllm_gguf *g); /* of tensor data, default 32 */
uint64_t vkllm_gguf_file_size(const vkllm_gguf *g);
const char *vkllm_gguf_name(const vkllm_gguf *g); /* the path or name given at open */

uint64_t vkllm_gguf_kv_count(const vkllm_gguf *g);
const struct vkllm_gguf_kv *vkllm_gguf_kv_at(const vkllm_gguf *g, uint64_t i);
/* The key/value pair named KEY, or NULL. */
const struct vkllm_gguf_kv *vkllm_gguf_find_kv(const vkllm_gguf *g, const char *key);

/* Typed getters. Each returns VKLLM_OK and sets *out, VKLLM_E_NOT_FOUND if the
 * key is absent (*out untouched, err untouched), or VKLLM_E_FORMAT if the value
 * has the wrong type or does not fit (err says which key and why).
 * get_uint accepts any integer type holding a non-negative value; get_float
 * accepts FLOAT32 and FLOAT64; get_arr checks the element type unless it is
 * VKLLM_GGUF_TYPE_COUNT (any). */
int vkllm_gguf_get_uint(const vkllm_gguf *g, const char *key, uint64_t *out,
                        struct vkllm_error *err);
int vkllm_gguf_get_float(const vkllm_gguf *g, const char *key, double *out,
                         struct vkllm_error *err);
int vkllm_gguf_get_bool(const vkllm_gguf *g, const char *key, bool *out, struct vkllm_error *err);
int vkllm_gguf_get_str(const vkllm_gguf *g, const char *key, struct vkllm_gguf_str *out,
                       struct vkllm_error *err);
int vkllm_gguf_get_arr(const vkllm_gguf *g, const char *key, enum vkllm_gguf_type elem_type,
                       const struct vkllm_gguf_kv **out, struct vkllm_error *err);

/* Element I of an array kv. Integer and float elements convert to the
 * requested form; strings are O(1). I >= arr_len, a kv that is not an array,
 * or elements of the wrong kind (arr_str of numbers, arr_int or arr_float of
 * strings or arrays) give "" (len 0), 0 and 0.0, reading nothing. */
struct vkllm_gguf_str vkllm_gguf_arr_str(const struct vkllm_gguf_kv *kv, uint64_t i);
int64_t vkllm_gguf_arr_int(const struct vkllm_gguf_kv *kv, uint64_t i);
double vkllm_gguf_arr_float(const struct vkllm_gguf_kv *kv, uint64_t i);

/* Scalar value of a non-array kv, converted (bool -> 0/1). */
int64_t vkllm_gguf_kv_int(const struct vkllm_gguf_kv *kv);
double vkllm_gguf_kv_float(const struct vkllm_gguf_kv *kv);

const char *vkllm_gguf_type_name(enum vkllm_gguf_type t); /* "uint32", ... or "?" */

uint64_t vkllm_gguf_tensor_count(const vkllm_gguf *g);
const struct vkllm_gguf_tensor *vkllm_gguf_tensor_at(const vkllm_gguf *g, uint64_t i);
const struct vkllm_gguf_tensor *vkllm_gguf_find_tensor(const vkllm_gguf *g, const char *name);

/* Copies N bytes of tensor T of G, from OFFSET bytes into its data, to DST: the
 * only way to its bytes. Safe from several threads at once. VKLLM_E_IO when
 * the file changed since it was opened ("PATH: the file changed while being
 * read (it is now N bytes; expected M)") or cannot be read; VKLLM_E_INVALID
 * when the range is not inside the tensor. */
int vkllm_gguf_read(const vkllm_gguf *g, const struct vkllm_gguf_tensor *t, uint64_t offset,
                    void *dst, uint64_t n, struct vkllm_error *err);

/* ============================== GGUF writer ============================== */

/* Builds a GGUF v3 file in memory order: key/values, tensor infos, aligned data.
 * Keys keep the order they were first set in; setting a key again replaces it.
 * Tensor data is referenced, not copied: it must stay valid until _write. */
typedef struct vkllm_gguf_writer vkllm_gguf_writer;

int vkllm_gguf_writer_create(vkllm_gguf_writer **out, struct vkllm_error *err);
void vkllm_gguf_writer_destroy(vkllm_gguf_writer *w);

int vkllm_gguf_writer_set_uint32(vkllm_gguf_writer *w, const char *key, uint32_t v);
int vkllm_gguf_writer_set_int32(vkllm_gguf_writer *w, const char *key, int32_t v);
int vkllm_gguf_writer_set_uint64(vkllm_gguf_writer *w, const char *key, uint64_t v);
int vkllm_gguf_writer_set_float32(vkllm_gguf_writer *w, const char *key, float v);
int vkllm_gguf_writer_set_bool(vkllm_gguf_writer *w, const char *key, bool v);
int vkllm_gguf_writer_set_str(vkllm_gguf_writer *w, const char *key, const char *v);
/* An array of N fixed-size elements of ELEM_TYPE (not STRING or ARRAY), copied. */
int vkllm_gguf_writer_set_arr(vkllm_gguf_writer *w, const char *key, enum vkllm_gguf_type elem_type,
                              const void *data, uint64_t n);
/* An array of N strings, copied. LENS may be NULL for NUL-terminated strings. */
int vkllm_gguf_writer_set_arr_str(vkllm_gguf_writer *w, const char *key, const char *const *strs,
                                  const uint64_t *lens, uint64_t n);
/* Copies a key/value (of any type, arrays included) from an open file.
 * VKLLM_E_IO if the stop function (below) said to stop while it copied. */
int vkllm_gguf_writer_copy_kv(vkllm_gguf_writer *w, const struct vkllm_gguf_kv *kv);
/* Why _copy_kv failed on KV with RC, for "cannot copy key 'K': WHY": a key
 * holding a NUL byte, say (GGUF allows it; the writer's keys are C strings). */
const char *vkllm_gguf_writer_copy_kv_why(const struct vkllm_gguf_kv *kv, int rc);
/* Sets GO_ON(USER), asked every few megabytes while _copy_kv copies and _write
 * builds and writes the file: when it returns false they stop, and every later
 * _copy_kv and _write fails (VKLLM_E_IO, "PATH: stopped"; nothing left at
 * PATH). NULL (the default): never stops. */
void vkllm_gguf_writer_set_stop(vkllm_gguf_writer *w, bool (*go_on)(void *user), void *user);
/* Sets the data alignment (a power of two; default 32, written as general.alignment
 * only when it differs). */
int vkllm_gguf_writer_set_alignment(vkllm_gguf_writer *w, uint32_t alignment);

/* Adds a tensor. SIZE must equal what TYPE and NE imply. */
int vkllm_gguf_writer_add_tensor(vkllm_gguf_writer *w, const char *name, uint32_t type,
                                 uint32_t n_dims, const uint64_t ne[4], const void *data,
                                 uint64_t size);
/* Adds a tensor whose SIZE bytes are made while the file is written: FILL(USER,
 * BUF, ERR) puts them in BUF and returns VKLLM_OK, or a status (ERR filled)
 * that stops the write. Tensors are filled in the order they were added, one at
 * a time, so a converter holds one converted tensor in memory, not the file. */
int vkllm_gguf_writer_add_tensor_fill(vkllm_gguf_writer *w, const char *name, uint32_t type,
                                      uint32_t n_dims, const uint64_t ne[4], uint64_t size,
                                      int (*fill)(void *user, void *buf, struct vkllm_error *err),
                                      void *user);

/* Writes PATH. On failure (a fill included) nothing is left at PATH if it is
 * a regular file. */
int vkllm_gguf_writer_write(vkllm_gguf_writer *w, const char *path, struct vkllm_error *err);

/* ============================== Devices ============================== */

enum vkllm_device_type {
    VKLLM_DEVICE_OTHER = 0,
    VKLLM_DEVICE_INTEGRATED = 1,
    VKLLM_DEVICE_DISCRETE = 2,
    VKLLM_DEVICE_VIRTUAL = 3,
    VKLLM_DEVICE_CPU = 4,
};

/* Subgroup operation bits, as VkSubgroupFeatureFlagBits. */
enum vkllm_subgroup_ops {
    VKLLM_SUBGROUP_BASIC = 1u << 0,
    VKLLM_SUBGROUP_VOTE = 1u << 1,
    VKLLM_SUBGROUP_ARITHMETIC = 1u << 2,
    VKLLM_SUBGROUP_BALLOT = 1u << 3,
    VKLLM_SUBGROUP_SHUFFLE = 1u << 4,
    VKLLM_SUBGROUP_SHUFFLE_RELATIVE = 1u << 5,
    VKLLM_SUBGROUP_CLUSTERED = 1u << 6,
    VKLLM_SUBGROUP_QUAD = 1u << 7,
};

struct vkllm_device_info {
    uint32_t index; /* position in vkllm_devices_list order, for --device N */
    char name[256];
    char driver[256]; /* driver name and version text */
    enum vkllm_device_type type;
    uint32_t vendor_id, device_id;
    uint32_t api_version;        /* VK_MAKE_API_VERSION packing */
    uint64_t device_local_bytes; /* sum of device-local heaps */
    uint64_t budget_bytes;       /* what this process may use of them now: VK_EXT_memory_budget's
                                  * heapBudget, else their size; VKLLM_MAX_MEMORY caps both */
    bool memory_budget;          /* the driver reports budgets (VK_EXT_memory_budget) */

    /* features the shaders can use */
    bool fp16;                /* shaderFloat16 */
    bool int8;                /* shaderInt8 */
    bool storage16;           /* storageBuffer16BitAccess */
    bool storage8;            /* storageBuffer8BitAccess */
    bool int_dot;             /* shaderIntegerDotProduct (Vulkan 1.3) */
    bool int_dot_accelerated; /* ... and packed signed 4x8-bit dots run in hardware */
    bool coopmat;             /* VK_KHR_cooperative_matrix */
    /* VK_NV_cooperative_matrix with 16 x 16 x 16 half-float products summed
     * in floats, subgroups of 32 and the features its shaders need: what
     * gemm_coop.comp runs on (the toolchain vkllm builds with predates the
     * KHR extension's shaders) */
    bool coopmat_nv;
    bool subgroup_size_control; /* VK_EXT_subgroup_size_control / Vulkan 1.3 */
    uint32_t subgroup_size;
    uint32_t subgroup_min_size, subgroup_max_size;
    uint32_t subgroup_ops; /* enum vkllm_subgroup_ops bits, compute stage */

    /* limits the engine respects */
    uint64_t max_storage_buffer_range;
    uint64_t max_memory_allocation;
    uint64_t max_buffer_size;
    uint32_t max_shared_memory;
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_count[3];
    uint32_t max_push_constants;
    uint64_t min_storage_buffer_offset_alignment;
    /* uniform texel buffers of uvec4 words (R32G32B32A32_UINT): 0 elements
     * where the format cannot be one */
    uint32_t max_texel_buffer_elements;
    uint64_t min_texel_buffer_offset_alignment;
    float timestamp_period_ns; /* 0 if the compute queue has no timestamps */
};

/* Lists every Vulkan device into OUT (up to CAP entries) and returns how many
 * there are (which may exceed CAP), or a negative status. */
int vkllm_devices_list(struct vkllm_device_info *out, int cap, struct vkllm_error *err);
/* The index in DEVS[0..N) that vkllm_context_params.device = SELECTOR would
 * use (NULL: the default), or VKLLM_E_NO_DEVICE / VKLLM_E_INVALID (a blank
 * name), as vkllm_context_create would fail. */
int vkllm_device_choose(const struct vkllm_device_info *devs, uint32_t n, const char *selector,
                        struct vkllm_error *err);

/* ============================== Context ============================== */

typedef struct vkllm_context vkllm_context;

struct vkllm_context_params {
    /* Device to use: an index ("1") or part of a name ("llvmpipe"), case
     * insensitive; a blank name or a negative index is refused. NULL: the
     * VKLLM_DEVICE environment variable (unless empty), else the discrete GPU
     * with most memory, then integrated, virtual, CPU. */
    const char *device;
    /* Enable the Khronos validation layer (also: VKLLM_VALIDATE=1). Every
     * message it prints is counted; see vkllm_context_validation_errors. */
    bool validation;
    /* Kernel paths to force to their fallbacks, comma-separated (also:
     * VKLLM_FORCE): "shared-reduce" reduces matvec sums through shared memory
     * instead of subgroup operations; "no-gemm" sends prompt batches through
     * matvec instead of the tiled GEMM; "no-tiled-attention" gives prompts
     * the per-(token, head) attention that decode uses instead of tiles of
     * queries sharing K and V loads; "no-split-attention" gives decode one
     * workgroup per (token, head) instead of splitting its positions over
     * several; "no-grouped-attention" gives a split's workgroup one query
     * head instead of those that share a KV head (a CPU device's choice);
     * "no-memory-budget" counts free memory as a device without
     * VK_EXT_memory_budget does (the heap's size, less what vkllm holds);
     * "no-fuse" records every graph node as its own dispatch (no RoPE fused
     * with the KV cache write, no norm with the quantization of its output);
     * "no-int-dot" keeps block-format matvecs off packed 4x8-bit dot
     * instructions where the device would take them (in hardware, or
     * emulated on a CPU device: Q4_0 and Q8_0 then sum their integer
     * products one at a time, the other formats take float activations),
     * and "int-dot" uses those instructions wherever the device has them,
     * accelerated or not, so that the path is tested there; "no-texel-loads"
     * has the integer-dot matvec and the GEMM read a block format's weights
     * and their input, and prompt attention an F16 KV cache, from storage
     * buffers where they would read them as uniform texel buffers (a CPU
     * device), and "texel-loads" the other way; "no-gemm-pairs" has Q4_0,
     * Q4_K and Q6_K GEMMs multiply floats where they would multiply two tokens'
     * int8 inputs at once in integers (a CPU device, with texel loads), and
     * "gemm-pairs" the other way; "coopmat" runs block-format GEMMs on
     * VK_NV_cooperative_matrix's matrix units where the device has them (off
     * by default until it has passed on a GPU), and "coopmat-emulate" the
     * same kernel with its products in plain code, on any device.
     * NULL: the best the device offers. */
    const char *force;
    /* Time every dispatch (GPU timestamps; also: VKLLM_PROFILE=1) for
     * vkllm_session_profile. Costs a timestamp per dispatch. */
    bool profile;
};

int vkllm_context_create(const struct vkllm_context_params *params, vkllm_context **out,
                         struct vkllm_error *err);
void vkllm_context_destroy(vkllm_context *ctx);

const struct vkllm_device_info *vkllm_context_device(const vkllm_context *ctx);
/* The kernel paths chosen for the device, in one line of words. */
const char *vkllm_context_paths(const vkllm_context *ctx);
/* Compiled pipelines are kept between runs in $XDG_CACHE_HOME/vkllm (else
 * ~/.cache/vkllm), one file per device model, read at create and written
 * (atomically) at destroy when pipelines were made; VKLLM_PIPELINE_CACHE=0
 * turns this off (1, or unset: on). What the context worked around, for the
 * program to show as notes: a cache file that was corrupt, made for another
 * device, driver or build, or unreadable, and was ignored. Each is one
 * printable line, "PATH: what", valid while CTX is; NULL for I >= the count. */
size_t vkllm_context_note_count(const vkllm_context *ctx);
const char *vkllm_context_note(const vkllm_context *ctx, size_t i);
/* Validation messages (warning or error) seen so far; they go to stderr too. */
uint32_t vkllm_context_validation_errors(const vkllm_context *ctx);
/* Bytes copied from host memory into device buffers through the staging ring
 * since the context was created: the weights of models and adapters as they
 * load. Per-step inputs (tokens, positions, RoPE rows) are written into mapped
 * host-visible buffers instead and are not counted, so this stays put while
 * sessions decode or switch adapters. */
uint64_t vkllm_context_bytes_uploaded(const vkllm_context *ctx);
/* True once the device was lost (VK_ERROR_DEVICE_LOST, or a wait that timed
 * out, VKLLM_TIMEOUT seconds, default 60): every later call on the context
 * and its models and sessions fails with the same error. Free them and the
 * context, and create a new one to continue. VKLLM_FAULT=KIND:N makes the Nth
 * Vulkan call of a kind fail, for tests (engine/vk/vk_fault.h lists them). */
bool vkllm_context_lost(const vkllm_context *ctx);

/* The device-local heap that weights, KV cache and activations go to.
 * VKLLM_MAX_MEMORY=BYTES (K/M/G/T suffixes) makes the device report at most that
 * much, to try what a smaller device refuses. Free: budget - usage. */
struct vkllm_memory_budget {
    uint64_t size;   /* the heap's size */
    uint64_t budget; /* what this process may use: the driver's estimate, else size */
    uint64_t usage;  /* what this process uses now */
    bool reported;   /* budget and usage come from the driver (VK_EXT_memory_budget);
                      * else usage counts vkllm's own allocations */
};
void vkllm_context_memory(const vkllm_context *ctx, struct vkllm_memory_budget *out);

/* Measures the device's copy bandwidth into *GBPS (1e9 bytes/s, read plus
 * written): the fastest of a few device-to-device copies of 256 MiB (less when
 * the device's limits or an eighth of its free memory say so), each made by
 * vkCmdCopyBuffer and by a kernel (a driver's copy engine may be the slower
 * of the two), timed with GPU
 * timestamps where the queue has them, else the wall clock. Decode reads every
 * weight once per token, so this is its ceiling. Takes a second or so; holds
 * twice the copy's size of device memory meanwhile. VKLLM_E_DEVICE_MEMORY
 * below 64 MiB a buffer (a smaller copy would measure the caches). */
int vkllm_context_copy_bandwidth(vkllm_context *ctx, double *gbps, struct vkllm_error *err);

/* ============================== Model ============================== */

typedef struct vkllm_model vkllm_model;

/* Hyperparameters, read from the file's metadata. */
struct vkllm_hparams {
    char arch[24]; /* general.architecture */
    uint32_t n_vocab;
    uint32_t n_ctx_train; /* context length the model was trained for */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv; /* < n_head for grouped-query attention */
    uint32_t head_dim;  /* n_embd / n_head unless the file says otherwise */
    uint32_t n_ff;
    uint32_t n_rot; /* dimensions rotated by RoPE, <= head_dim; 0 without RoPE */
    float rope_freq_base;
    float rope_freq_base_swa; /* of the sliding-window layers (gemma3) */
    bool rope_neox;           /* rotate halves (NeoX) instead of adjacent pairs */
    float norm_eps;
    bool layer_norm;         /* LayerNorm (mean and variance) instead of RMSNorm */
    bool parallel_residual;  /* attention and feed-forward both read the layer's input */
    bool tied_output;        /* output projection shares token_embd */
    uint32_t sliding_window; /* 0: none; else keys this many positions back are masked */
    uint32_t n_swa_layers;   /* layers that use it */
    float attn_softcap;      /* 0: none; else scores become c * tanh(score / c) */
    float final_softcap;     /* the same for the logits */
    float alibi_max_bias;    /* 0: no ALiBi */
};

/* Reads the hyperparameters of G's architecture and checks its tensors, as a
 * load would, without a device: one clear error for an architecture or a
 * feature vkllm does not run. */
int vkllm_hparams_read(const vkllm_gguf *g, struct vkllm_hparams *hp, struct vkllm_error *err);

struct vkllm_model_params {
    /* Called during loading with the fraction done (0..1); may be NULL. */
    void (*progress)(float fraction, void *user);
    void *user;
    /* The session the caller will create, or NULL. The load refuses a model
     * that does not fit the device's free memory (VKLLM_E_DEVICE_MEMORY, with
     * the numbers) before uploading anything: the weights and staging, plus
     * this session's KV cache and activations when given (else those are
     * checked by vkllm_session_create). */
    const struct vkllm_session_params *session;
    /* The adapter files (N_ADAPTERS of them) the caller will load with
     * vkllm_adapter_load: each is checked against the model's file before
     * any upload (a wrong one fails the load in a moment, not after the
     * weights' upload), and their device memory counts in that check. */
    const char *const *adapters;
    uint32_t n_adapters;
    /* What a refusal for memory advises, in the calling program's own options
     * ("fewer -np or a smaller -d"); NULL: a -c that fits and a smaller
     * -b/-ub, as run, chat and serve take them. */
    const char *advice;
};

int vkllm_model_load(vkllm_context *ctx, const char *path, const struct vkllm_model_params *params,
                     vkllm_model **out, struct vkllm_error *err);
void vkllm_model_free(vkllm_model *m);

const struct vkllm_hparams *vkllm_model_hparams(const vkllm_model *m);
const vkllm_gguf *vkllm_model_gguf(const vkllm_model *m);
/* Bytes of device memory holding the weights. */
uint64_t vkllm_model_weight_bytes(const vkllm_model *m);

/* ============================== Tuning ============================== */

/* One weight shape as vkllm_tune measured it. */
struct vkllm_tune_shape {
    const char *tensor; /* the role of its first tensor ("attn_q.weight") */
    const char *type;   /* its format ("Q4_0") */
    uint32_t k, n;      /* row length, rows */
    uint32_t uses;      /* matrices of this shape: its matvecs per decoded token */
    uint32_t n_candidates;
    uint32_t tpr[12];       /* the decode matvec's threads per row, each tried */
    uint32_t rows[12];      /* with its rows per thread group */
    bool by_word[12];       /* a lane takes a word of quants (Q4_K, Q6_K), not a sub-block */
    double ms[12];          /* the GPU milliseconds of each's fastest run */
    uint32_t default_index; /* the untuned choice */
    uint32_t chosen;        /* the one kept: the default unless another beat it by 3% */
};
typedef void (*vkllm_tune_fn)(const struct vkllm_tune_shape *s, uint32_t i, uint32_t n, void *user);

/* Times the variants of the decode matvec for each weight shape of M on its
 * context's device (REPS runs of each, 1..64, in turns after a warm-up), keeps
 * the fastest in the context's table (other shapes' entries stay) and writes
 * it beside the on-disk pipeline cache (vkllm_tune_path), where every later
 * context on this device, driver and build of the shaders reads it
 * (every shape measured has a line, the default's included);
 * VKLLM_TUNE=0 ignores it (and a context made so starts the file afresh
 * here). FN, if not
 * NULL, gets each shape as it is done (I of N). VKLLM_E_IO when there is no
 * cache directory (VKLLM_PIPELINE_CACHE=0, no HOME). */
int vkllm_tune(vkllm_model *m, int reps, vkllm_tune_fn fn, void *user, struct vkllm_error *err);
/* The file the context reads its tuning from and vkllm_tune writes, or NULL. */
const char *vkllm_tune_path(const vkllm_context *ctx);

/* Automatic tuning, for a model's first run on a device: the library never
 * starts it by itself; vkllm's programs call it after each model load, before
 * the sessions record their command buffers. */
struct vkllm_tune_auto_params {
    /* Measuring time: no shape starts past it. 0: $VKLLM_TUNE_SECONDS, else
     * 3 s (VKLLM_TUNE_SECONDS=0 measures nothing). */
    double seconds;
    /* Polled between shapes, if not NULL: nonzero stops there (the shapes
     * measured are kept). */
    int (*stop)(void *user);
    void *user;
};
struct vkllm_tune_auto_result {
    uint32_t measured;    /* shapes measured now, and saved */
    uint32_t left;        /* shapes still unmeasured: past the budget, or stopped */
    double seconds;       /* the time it took */
    double before, after; /* the measured shapes' matvec ms per token: defaults, tuned */
};
/* How many of M's weight shapes the tuning file lacks (none measured yet):
 * what vkllm_tune_auto would measure. 0 when automatic tuning is off:
 * VKLLM_TUNE=0 (no tuning read either), VKLLM_TUNE=manual (only vkllm_tune),
 * or no cache directory. *SECONDS (if not NULL) gets the default budget. */
uint32_t vkllm_tune_pending(const vkllm_model *m, double *seconds);
/* Measures M's shapes that vkllm_tune_pending counts, the ones read most
 * per token first, within P's budget (P may be NULL), with fewer runs than
 * vkllm_tune, and saves them as vkllm_tune does, other shapes in the file
 * kept; the shapes the budget left stay untuned and unrecorded, for the
 * next call. Before measuring anything, VKLLM_E_IO when the cache directory
 * cannot be written (tuning would be lost and repeated at every run). */
int vkllm_tune_auto(vkllm_model *m, const struct vkllm_tune_auto_params *p,
                    struct vkllm_tune_auto_result *out, struct vkllm_error *err);

/* ============================== Tokenizer ============================== */

typedef struct vkllm_vocab vkllm_vocab;

/* Builds the tokenizer from a file's tokenizer.ggml.* keys. */
int vkllm_vocab_load(const vkllm_gguf *g, vkllm_vocab **out, struct vkllm_error *err);
void vkllm_vocab_free(vkllm_vocab *v);
const vkllm_vocab *vkllm_model_vocab(const vkllm_model *m);

int32_t vkllm_vocab_n_tokens(const vkllm_vocab *v);
int32_t vkllm_vocab_bos(const vkllm_vocab *v); /* -1 if none */
int32_t vkllm_vocab_eos(const vkllm_vocab *v); /* -1 if none */
bool vkllm_vocab_add_bos(const vkllm_vocab *v);
/* True for tokens that end generation (EOS, EOT). */
bool vkllm_vocab_is_eog(const vkllm_vocab *v, int32_t token);
/* What loading the vocabulary worked around, for the program to show: a
 * special token id out of range (the default used instead), an unknown or
 * missing pre-tokenizer. Each is one printable line, "PATH: what", valid while
 * V is; vkllm_vocab_warning gives NULL for I >= the count. */
size_t vkllm_vocab_warning_count(const vkllm_vocab *v);
const char *vkllm_vocab_warning(const vkllm_vocab *v, size_t i);

/* Tokenizes LEN bytes of TEXT into OUT (room for CAP ids). ADD_SPECIAL adds BOS
 * (and EOS) as the vocabulary asks; PARSE_SPECIAL turns text like "<s>" into
 * control tokens. Returns the number of tokens, which may exceed CAP (then only
 * CAP were written: call again with more room), or a negative status. */
int vkllm_tokenize(const vkllm_vocab *v, const char *text, size_t len, bool add_special,
                   bool parse_special, int32_t *out, int cap);

/* Writes the text of TOKEN into BUF (CAP bytes, not NUL-terminated) and
 * returns its length. If that exceeds CAP nothing is written: call again with
 * more room. Control tokens give "" unless SPECIAL. Negative status for an id
 * out of range. */
int vkllm_token_to_piece(const vkllm_vocab *v, int32_t token, bool special, char *buf, int cap);

/* ============================== Session ============================== */

typedef struct vkllm_session vkllm_session;

struct vkllm_session_params {
    uint32_t n_ctx;          /* tokens the KV cache holds; 0: the model's, at most 4096 */
    uint32_t n_batch;        /* most tokens one GPU step takes (a prompt is cut into steps
                              * of this many, each through every layer as one batch);
                              * 0: 512. Lowered to what the device's buffers hold. */
    uint32_t n_ubatch;       /* if nonzero and smaller, the step size instead (llama.cpp's -ub) */
    bool logits_all;         /* keep logits for every token of a decode, not just the last */
    bool no_logit_check;     /* skip the scan for NaN and infinite logits (benchmarks) */
    uint32_t n_seq;          /* vkllm_session_group_create: sessions in the group (<= the
                              * batch); vkllm_session_create takes 0 or 1 */
    uint32_t type_k, type_v; /* the KV cache's types: enum vkllm_cache_type (0: F16) */
};

/* A KV cache type (llama.cpp's -ctk/-ctv): F16, or Q8_0 in llama.cpp's
 * blocks (an f16 scale and 32 int8, 34 bytes; the head size a multiple of 32). */
enum vkllm_cache_type { VKLLM_CACHE_F16 = 0, VKLLM_CACHE_Q8_0 = 1, VKLLM_CACHE_TYPE_COUNT };
/* "f16", "q8_0"; NULL for an unknown type. */
const char *vkllm_cache_type_name(uint32_t type);
/* The type named NAME (as vkllm_cache_type_name spells it), or -1. */
int vkllm_cache_type_parse(const char *name);

int vkllm_session_create(vkllm_model *m, const struct vkllm_session_params *params,
                         vkllm_session **out, struct vkllm_error *err);
/* Frees a session made by vkllm_session_create; a group's sessions go with
 * their group, and this does nothing to them. */
void vkllm_session_free(vkllm_session *s);

/* A group of sessions decodes one token of each in one step: the weights are
 * read once for all of them, so a server generating for N clients at once
 * runs nearly N times as many tokens per second as for one. The sessions have
 * a KV cache each (n_ctx tokens) and share the activations (each prompt's
 * step runs alone, through the same buffers) and the adapter set (setting it
 * through any session sets it for all, emptying each cache where it must).
 * Not thread-safe: one thread decodes the group's sessions. */
typedef struct vkllm_session_group vkllm_session_group;

/* PARAMS->n_seq sessions (at least 1). */
int vkllm_session_group_create(vkllm_model *m, const struct vkllm_session_params *params,
                               vkllm_session_group **out, struct vkllm_error *err);
void vkllm_session_group_free(vkllm_session_group *g);
uint32_t vkllm_session_group_size(const vkllm_session_group *g);
/* Session I (< the size), owned by the group. */
vkllm_session *vkllm_session_group_member(vkllm_session_group *g, uint32_t i);
/* Decodes TOKENS[i] in SESSIONS[i] (each of G's, none twice), for i < N, in
 * one step; afterwards vkllm_session_logits(SESSIONS[i], -1) predicts the
 * next token of each: the logits of N separate one-token decodes, bit for
 * bit (each row runs the same kernels). All or nothing, as vkllm_session_decode: on a failure
 * (one session's context full, a token out of range, logits not finite) no
 * session has moved. */
int vkllm_session_group_decode(vkllm_session_group *g, vkllm_session *const *sessions,
                               const int32_t *tokens, uint32_t n, struct vkllm_error *err);

/* Runs N tokens at the next positions. Afterwards vkllm_session_logits gives
 * the logits after the last one (and after each one with logits_all).
 * VKLLM_E_NUMERIC if a row of those logits holds a NaN or an infinity (err
 * names its position). All or nothing: on any failure the session is at the
 * position it had before the call and has no logits; except that a model with
 * sliding-window layers whose failure came after its first n_batch tokens has
 * lost the window before that position, and is reset to position 0. */
int vkllm_session_decode(vkllm_session *s, const int32_t *tokens, uint32_t n,
                         struct vkllm_error *err);
/* Logits (n_vocab floats) after token I of the last decode; I = -1 means its
 * last token. NULL if I was not kept. Valid until the next decode. */
const float *vkllm_session_logits(const vkllm_session *s, int32_t i);
uint32_t vkllm_session_pos(const vkllm_session *s); /* tokens in the cache */
uint32_t vkllm_session_n_ctx(const vkllm_session *s);
void vkllm_session_reset(vkllm_session *s); /* forget all tokens */
/* Cuts the cache back to its first POS tokens (POS <= vkllm_session_pos): the
 * next decode continues at position POS and overwrites what lay beyond, so an
 * edited or regenerated turn reprocesses only what changed. Logits are
 * forgotten until the next decode. A session is one sequence: several share a
 * model, each with its own cache (in a group, or not). */
int vkllm_session_truncate(vkllm_session *s, uint32_t pos, struct vkllm_error *err);
/* GPU time of the last decode, from timestamp queries (0 if unsupported). */
double vkllm_session_last_gpu_ms(const vkllm_session *s);
/* Dispatches and barriers recorded for one decode step of a token of each of
 * S's group's sequences (one token when the group is of one): what a step
 * costs in launches, whatever the device. */
void vkllm_session_step_counts(const vkllm_session *s, uint32_t *dispatches, uint32_t *barriers);

/* Where a session's GPU time went, over every decode since it was created,
 * with the context's profile flag: per kernel (a shader variant, e.g.
 * "matvec_q4_0"), per layer, and per weight matrix with the bytes its
 * matmuls read (so GB/s = bytes / ms / 1e6). Each list is largest first. */
#define VKLLM_PROFILE_MAX 64
struct vkllm_profile_row {
    const char *name; /* the kernel; or the matrix ("attn_q.weight", "lora" for
                       * adapters' side paths); static */
    uint64_t dispatches;
    double ms;
    uint64_t bytes; /* weights read (matrices; 0 for kernels) */
};
struct vkllm_profile {
    double total_ms;
    struct vkllm_profile_row kernels[VKLLM_PROFILE_MAX];
    uint32_t n_kernels;
    struct vkllm_profile_row matrices[VKLLM_PROFILE_MAX];
    uint32_t n_matrices;
    double layer_ms[VKLLM_PROFILE_MAX * 8]; /* per layer (at most that many) */
    uint32_t n_layers;
    double other_ms; /* outside the layers: embeddings, the output norm and matrix */
};
/* VKLLM_E_UNSUPPORTED when the context does not profile or the device has
 * no timestamps (for S's group: a group's sessions share their graphs). */
int vkllm_session_profile(const vkllm_session *s, struct vkllm_profile *out,
                          struct vkllm_error *err);
/* Forgets the sums so far (for S's group: every session's), so that the
 * profile covers the decodes from now on: a benchmark's timed run, say,
 * without the decodes that set it up. */
void vkllm_session_profile_reset(vkllm_session *s);
/* Bytes of device memory the session holds: KV cache, activations, and its
 * host-visible step and logits buffers (a group's session: the group's). */
uint64_t vkllm_session_memory_bytes(const vkllm_session *s);

/* ============================== LoRA adapters ============================== */

/* Fine-tunes in llama.cpp's GGUF adapter format (general.type = adapter,
 * adapter.type = lora, adapter.lora.alpha, tensors NAME.lora_a and
 * NAME.lora_b beside the model's NAME), applied at run time as llama.cpp
 * applies them: each adapted matrix W computes W x + s B (A x) with
 * s = scale * alpha / rank (just scale when alpha is 0), the adapters of a
 * set adding up. The base weights are never touched, so one model serves any
 * mix of adapters. Load each adapter once (its A and B go to the device
 * then); sessions switch between sets with no upload. */
typedef struct vkllm_adapter vkllm_adapter;

/* Reads PATH, checks it against M (the architecture, every pair's names,
 * types F32/F16/Q8_0 and shapes; the error names the first mismatch: "PATH:
 * blk.0.attn_q.weight.lora_a is 64x8, the model's blk.0.attn_q.weight needs
 * 256 x rank"; also a NaN or an infinity in A or B, or an alpha beyond 1024
 * times the rank) and uploads it. VKLLM_E_DEVICE_MEMORY, with the numbers,
 * when it does not fit the device's free memory beside what is loaded (the
 * check comes before the upload). It must outlive the sessions that use it. */
int vkllm_adapter_load(vkllm_model *m, const char *path, vkllm_adapter **out,
                       struct vkllm_error *err);
void vkllm_adapter_free(vkllm_adapter *a);
/* The checks of vkllm_adapter_load without a device: ADAPTER against the
 * model file MODEL, or with MODEL NULL those that need no model (the type
 * keys, alpha, each lora_a's lora_b, their types and equal ranks). Reads A
 * and B for NaN and infinities. VKLLM_OK, or the loader's error. */
int vkllm_adapter_check(const vkllm_gguf *model, const vkllm_gguf *adapter,
                        struct vkllm_error *err);

struct vkllm_adapter_info {
    float alpha;                 /* adapter.lora.alpha, 0 when absent */
    uint32_t n_tensors;          /* the model's matrices it adapts */
    uint32_t rank_min, rank_max; /* over those matrices */
    uint64_t bytes;              /* device memory it holds */
};
void vkllm_adapter_describe(const vkllm_adapter *a, struct vkllm_adapter_info *out);

/* Makes ADAPTERS[0..N) (N = 0: none), at SCALES (NULL: all 1), the set that
 * S's next decodes apply, in that order. A set or a scale that differs from
 * the current one re-records the session's graphs (uploading nothing) and
 * empties the KV cache: every cached key and value was computed through the
 * old set, so none of them is valid under the new one. The exception is a
 * change of adapters that touch only the output matrix, which computes no
 * key or value: the cache then stays. The same set and scales again is a
 * no-op. On failure the session keeps its previous set and cache. */
int vkllm_session_set_adapters(vkllm_session *s, vkllm_adapter *const *adapters,
                               const float *scales, uint32_t n, struct vkllm_error *err);

/* vkllm_export_lora merges adapters into a new model file, as llama.cpp's
 * llama-export-lora does: each adapted matrix W becomes W + sum s B A (the
 * run-time factor s), computed in F32 on the CPU (no device needed), and is
 * written in W's own type (quantized ones re-quantized, which rounds again:
 * llama-export-lora writes F16 instead, as merged_f16 does); every other
 * tensor and every key is copied. Each
 * adapter is checked against the base as vkllm_adapter_load checks it; a
 * merged matrix with NaN or inf values, or values too large for its type,
 * fails (VKLLM_E_FORMAT, naming it and its adapters) and nothing is written. */
struct vkllm_lora_input {
    const char *path;
    float scale; /* 1 for --lora */
};
struct vkllm_export_lora_progress {
    uint64_t tensor, n_tensors; /* the tensor being written, from 0, of how many */
    const char *name;
    bool merged; /* adapters change it (else it is copied) */
};
struct vkllm_export_lora_params {
    const struct vkllm_lora_input *adapters; /* applied in this order */
    uint32_t n_adapters;
    bool merged_f16; /* merged quantized matrices as F16 (llama-export-lora's choice) */
    int n_threads;   /* that merge a matrix's rows; 0: one per core (the output is the same) */
    /* Called as each tensor starts, between chunks of rows of a merged
     * matrix (a fraction of a second apart) and now and then while the file
     * is written, from the calling thread; return false to stop (nothing is
     * written then). May be NULL. */
    bool (*progress)(const struct vkllm_export_lora_progress *p, void *user);
    void *user;
};
/* Reads BASE_PATH and the adapters and writes OUT_PATH through a temporary
 * file renamed at the end: a failure (the first bad adapter named, one line)
 * leaves no OUT_PATH and no temporary file. */
int vkllm_export_lora(const char *base_path, const char *out_path,
                      const struct vkllm_export_lora_params *params, struct vkllm_error *err);

/* ============================== Memory needs ============================== */

/* What a model and one session take, as the loader and vkllm_session_create
 * allocate it (pool alignment and block rounding included), in bytes. */
struct vkllm_memory_needs {
    uint64_t weights;                        /* every weight, on the device */
    uint64_t weights_type[VKLLM_TYPE_COUNT]; /* each type's tensors, before alignment;
                                              * norms and biases are F32 there */
    uint64_t kv_cache;                       /* keys and values, half floats */
    uint64_t activations;                    /* one batch's activations and attention scores */
    uint64_t session_host;                   /* the session's host-visible buffers */
    uint64_t staging;                        /* the upload ring, while loading only */
    uint64_t total;                          /* the most at once: weights + staging or session */
    uint32_t n_ctx, n_batch;                 /* the session's, defaults applied */
};

/* Computes the needs of G's model with a session of PARAMS (NULL: defaults)
 * on CTX's device, or, with CTX NULL, on a typical GPU (64-byte alignment,
 * 4 GiB bindings): that needs no Vulkan. */
int vkllm_memory_needs(const vkllm_gguf *g, const vkllm_context *ctx,
                       const struct vkllm_session_params *params, struct vkllm_memory_needs *out,
                       struct vkllm_error *err);
/* VKLLM_OK if G's model and a session of PARAMS fit CTX's free memory (the
 * total of vkllm_memory_needs), else VKLLM_E_DEVICE_MEMORY with one line
 * "PATH: needs ... but DEVICE has ... free: try -c N or a smaller quantization". */
int vkllm_memory_check(const vkllm_gguf *g, const vkllm_context *ctx,
                       const struct vkllm_session_params *params, struct vkllm_error *err);

/* ============================== Sampler ============================== */

typedef struct vkllm_sampler vkllm_sampler;

/* Applied in this order: the penalties, top-k, top-p, min-p, temperature,
 * then a draw from the seeded RNG. temp <= 0 is greedy (lowest id wins a tie).
 * The penalties, as llama.cpp's, on each distinct token of the last
 * repeat_last_n accepted: the logit divided by repeat_penalty (multiplied
 * when not positive), then minus its count times frequency_penalty and minus
 * presence_penalty (OpenAI's). */
struct vkllm_sampler_params {
    float temp;            /* 0.8 */
    int32_t top_k;         /* 40; <= 0 keeps all */
    float top_p;           /* 0.95; in (0, 1], 1 keeps all */
    float min_p;           /* 0.05; <= 0 keeps all */
    float repeat_penalty;  /* 1.0 = off */
    int32_t repeat_last_n; /* 64: how many recent tokens the penalties look at */
    uint64_t seed;
    float frequency_penalty; /* 0 = off */
    float presence_penalty;  /* 0 = off */
};

/* The defaults above (llama.cpp's), with SEED. */
struct vkllm_sampler_params vkllm_sampler_defaults(uint64_t seed);

int vkllm_sampler_create(const struct vkllm_sampler_params *params, int32_t n_vocab,
                         vkllm_sampler **out, struct vkllm_error *err);
void vkllm_sampler_free(vkllm_sampler *s);
/* Remembers TOKEN for the repetition penalty (prompt tokens and chosen ones). */
void vkllm_sampler_accept(vkllm_sampler *s, int32_t token);
/* Forgets every accepted token (the RNG is untouched): before giving the
 * penalties a conversation's tokens again, from its start, as a reply does
 * after /reset or in a new chat; else the old conversation's would count. */
void vkllm_sampler_reset(vkllm_sampler *s);
/* Chooses a token from N_VOCAB logits (not modified) and accepts it; a
 * negative status for NULL arguments. NaN logits count as -inf; if any are
 * +inf, those share all the probability. */
int32_t vkllm_sampler_sample(vkllm_sampler *s, const float *logits);

/* ============================== Quantization ============================== */

/* vkllm_quantize converts an F32, F16 or BF16 model to another weight format,
 * as `llama-quantize IN OUT TYPE` does without an importance matrix: the same
 * type for every tensor (llama.cpp's mixes: attn_v, ffn_down, output and
 * token_embd rules, fallbacks for rows that are not whole blocks), the same
 * metadata (general.file_type and general.quantization_version set, the rest
 * copied in order) and the same bytes. 1-D tensors (norms) are copied as they
 * are. */

/* What vkllm_quantize reports as it goes. */
struct vkllm_quantize_progress {
    uint64_t tensor;             /* index of the tensor being written, from 0 */
    uint64_t n_tensors;          /* how many the file has */
    const char *name;            /* its name */
    uint32_t from_type, to_type; /* enum vkllm_type */
    float fraction;              /* of all the model's elements written, 0..1 */
    /* Of the N_QUANTIZED tensors TYPE (or its mix) gives a block format,
     * N_FALLBACK have rows that are not whole blocks of it and get another
     * format (as llama-quantize's "required fallback quantization": F16, or
     * Q4_0, Q5_0, Q5_1, Q8_0, IQ4_NL for the 256-block formats);
     * FALLBACK_TYPES has bit (1 << enum vkllm_type) set for each. general.file_type still names
     * TYPE, as llama-quantize writes it. Known from the first call on. */
    uint64_t n_quantized, n_fallback, fallback_types;
};

struct vkllm_quantize_params {
    /* A format of the table ("Q8_0", "Q4_K", "IQ4_XS", "F16", ...) or a mix
     * ("Q4_K_M", "Q3_K_S", ...), as llama-quantize names them; case does not
     * matter. vkllm_quantize_type_name lists them. */
    const char *type;
    /* Every 2-D weight in TYPE's own format, no mix rules (llama-quantize
     * --pure); rows that are not whole blocks still fall back. */
    bool pure;
    int n_threads; /* 0: one per core */
    /* Called from the calling thread as each tensor starts and as its rows are
     * done, and now and then while the output is prepared (as the first tensor
     * about to start); return false to stop (vkllm_quantize then fails and
     * writes nothing). May be NULL. */
    bool (*progress)(const struct vkllm_quantize_progress *p, void *user);
    void *user;
};

/* Reads IN_PATH and writes OUT_PATH, through a temporary file beside it
 * (.vkllm.tmp-XXXXXX) renamed at the end: a failed or stopped run leaves no
 * OUT_PATH and no temporary file. */
int vkllm_quantize(const char *in_path, const char *out_path,
                   const struct vkllm_quantize_params *params, struct vkllm_error *err);

/* The TYPE names vkllm_quantize accepts, for I = 0, 1, ... until NULL. If
 * WHAT is not NULL it gets a few words on the type ("Q4_K mix: ..."). */
const char *vkllm_quantize_type_name(int i, const char **what);

/* ============================== Chat templates ============================== */

/* Renders the chat template TMPL (LEN bytes, e.g. a GGUF's tokenizer.chat_template)
 * as Hugging Face transformers renders it with Jinja2: the same text, byte for
 * byte. CONTEXT_JSON is a JSON object holding the variables (messages,
 * add_generation_prompt, bos_token, eos_token, tools, ...; NULL: none). On
 * success *OUT is a malloc'd, NUL-terminated text of *OUT_LEN bytes (OUT_LEN
 * may be NULL) for the caller to free. On failure *OUT is NULL and ERR says
 * why: VKLLM_E_FORMAT for a syntax error in the template or bad JSON,
 * VKLLM_E_INVALID when rendering fails; a template that calls
 * raise_exception(MSG) fails with exactly MSG (a NUL byte in it written \x00).
 * A hostile template cannot crash or hang the caller: steps, work, nesting,
 * output and memory are bounded, so that any render ends within a second or
 * two of CPU (docs/TEMPLATES.md). */
int vkllm_template_render(const char *tmpl, size_t len, const char *context_json, char **out,
                          size_t *out_len, struct vkllm_error *err);
/* vkllm_template_render that the caller can stop, e.g. from Ctrl+C: STOP (NULL:
 * never) is called with USER on the rendering thread about every millisecond
 * of the render's work; when it returns true the render ends at once, fails
 * with VKLLM_E_IO and the message "stopped", and *OUT is NULL. STOP should only
 * read a flag (a signal handler's, say). */
int vkllm_template_render_stop(const char *tmpl, size_t len, const char *context_json,
                               bool (*stop)(void *user), void *user, char **out, size_t *out_len,
                               struct vkllm_error *err);

/* ============================== Streaming text ============================== */

/* Turns sampled tokens into text to print, a token at a time, for a terminal,
 * a window or a server alike. What it hands out is always whole, valid UTF-8
 * characters (a character split across tokens waits for its last byte; bytes
 * that can never be valid become U+FFFD), and never the start of a stop string
 * that may yet complete: such text is held until it cannot. Generation ends at
 * an end-of-generation token of the vocabulary (EOS, EOT, EOM, ...) or at a stop
 * string, which is not printed. */
typedef struct vkllm_stream vkllm_stream;

enum vkllm_stream_state {
    VKLLM_STREAM_MORE = 0, /* go on generating */
    VKLLM_STREAM_EOG = 1,  /* an end-of-generation token came */
    VKLLM_STREAM_STOP = 2, /* a stop string was completed */
};

/* VOCAB may be NULL if only vkllm_stream_push_text is used. IGNORE_EOG makes
 * end-of-generation tokens ordinary (their text is empty). */
int vkllm_stream_create(const vkllm_vocab *vocab, bool ignore_eog, vkllm_stream **out,
                        struct vkllm_error *err);
void vkllm_stream_free(vkllm_stream *s);
/* Adds a stop string (copied). An empty one, or one that is not valid UTF-8,
 * could never match: VKLLM_E_INVALID. */
int vkllm_stream_add_stop(vkllm_stream *s, const char *stop, struct vkllm_error *err);
/* Starts a new reply: forgets held text and the reply so far, keeps the stop strings. */
void vkllm_stream_reset(vkllm_stream *s);

/* Feeds one sampled token. *TEXT and *LEN get the text that may be printed
 * now (possibly none), valid until the next call. Returns an enum
 * vkllm_stream_state, or a negative status. After EOG or STOP the reply is
 * over: what was held and can be printed has been handed out. */
int vkllm_stream_push(vkllm_stream *s, int32_t token, const char **text, size_t *len);
/* The same for LEN bytes of raw text (a token's piece). */
int vkllm_stream_push_text(vkllm_stream *s, const char *piece, size_t n, const char **text,
                           size_t *len);
/* Ends the reply when generation stops for another reason (length, Ctrl+C):
 * hands out what was held (an incomplete character as U+FFFD). */
void vkllm_stream_finish(vkllm_stream *s, const char **text, size_t *len);
/* The whole reply handed out so far (NUL-terminated), for the conversation. */
const char *vkllm_stream_reply(const vkllm_stream *s, size_t *len);

/* ============================== Conversation ============================== */

/* A conversation with a model: the messages, the chat template that renders
 * them, and the tokens of the rendering already in a session's KV cache. Each
 * turn re-renders the whole conversation; only what differs from the cached
 * tokens is decoded (the cache is cut back to the common prefix). Use:
 *
 *   vkllm_chat_create(model, session, &params, &chat, &err);
 *   vkllm_chat_add(chat, "user", text, len, &err);
 *   vkllm_chat_prefill(chat, &info, &err);          logits for the reply's first token
 *   loop: token = vkllm_sampler_sample(...); vkllm_stream_push(...);
 *         vkllm_chat_decode_token(chat, token, &err);
 *   vkllm_chat_add(chat, "assistant", reply, len, &err);
 */
typedef struct vkllm_chat vkllm_chat;

struct vkllm_chat_params {
    /* The chat template; NULL: the model's tokenizer.chat_template. When there
     * is none, or it fails to render, a built-in format chosen from the
     * vocabulary (chatml, llama2, llama3, mistral, gemma, phi3, zephyr) is
     * used and NOTICE says so. */
    const char *template_text;
    size_t template_len;
    /* Tokens kept free for the reply when old turns must be dropped to fit the
     * context; 0: a quarter of the context. */
    uint32_t n_reserve;
    /* Called with one line (no newline) when the engine changes something the
     * user should know about: a fallback format, turns dropped. May be NULL. */
    void (*notice)(const char *msg, void *user);
    void *user;
    /* Asked now and then while a template renders (a hostile template may
     * work for a second or two); when it returns true the render, and the
     * prefill or render call that needed it, fail with VKLLM_E_IO "stopped".
     * It should only read a flag (a signal handler's). May be NULL. */
    bool (*stop)(void *user);
    /* A render-only chat's context (no session), which vkllm_chat_check
     * measures against: a window checks a system prompt on its own thread
     * while the session is busy. 0: none. A session's own context wins. */
    uint32_t n_ctx;
    /* True: a template that fails to render these messages fails the render
     * (with the template's message) instead of falling back to a built-in
     * format for it: a server answers its client with the error. */
    bool template_errors;
};

/* What vkllm_chat_prefill did. */
struct vkllm_chat_turn {
    uint32_t n_cached;  /* tokens reused from the cache */
    uint32_t n_new;     /* tokens decoded now */
    uint32_t n_prompt;  /* n_cached + n_new: the rendered conversation */
    uint32_t n_dropped; /* messages dropped (in all) to fit the context */
    uint32_t n_renders; /* renderings tried: 1, or about 2 log2(turns) when turns are dropped */
    /* the preparation's work, in all over the renderings tried: messages
     * rendered and bytes of rendering tokenized. Bounded by what the context
     * holds, not by the conversation's length (see vkllm_chat_prefill) */
    uint64_t n_rendered, n_tokenized;
};

/* The session must be used by this conversation only; its cache is emptied.
 * Neither the model nor the session is owned. SESSION NULL makes a
 * render-only chat (a server's renderer, whose prompts other sessions
 * decode): the message functions, vkllm_chat_render, _save and _load work;
 * vkllm_chat_prefill and _decode_token return VKLLM_E_INVALID, and so does
 * _check unless params->n_ctx gives a context. */
int vkllm_chat_create(const vkllm_model *model, vkllm_session *session,
                      const struct vkllm_chat_params *params, vkllm_chat **out,
                      struct vkllm_error *err);
void vkllm_chat_free(vkllm_chat *c);

/* Appends a message (ROLE "system", "user", "assistant", ...; CONTENT must be
 * UTF-8). */
int vkllm_chat_add(vkllm_chat *c, const char *role, const char *content, size_t len,
                   struct vkllm_error *err);
/* Forgets the messages (but the first one if KEEP_SYSTEM and it is a system
 * message). The cache is kept: a new conversation reuses what still matches. */
void vkllm_chat_clear(vkllm_chat *c, bool keep_system);
/* Removes the last message (one that did not fit, say). */
void vkllm_chat_pop(vkllm_chat *c);
size_t vkllm_chat_count(const vkllm_chat *c);
/* Message I's role and content (NUL-terminated; *LEN gets its length if LEN
 * is not NULL); NULL for I out of range. */
const char *vkllm_chat_role(const vkllm_chat *c, size_t i);
const char *vkllm_chat_content(const vkllm_chat *c, size_t i, size_t *len);

/* Renders the conversation with the generation prompt into *OUT (malloc'd,
 * NUL-terminated; the caller frees it), as it is tokenized (a leading BOS text
 * the tokenizer adds anyway is removed). */
int vkllm_chat_render(vkllm_chat *c, char **out, size_t *out_len, struct vkllm_error *err);
/* Renders, tokenizes and decodes what is not yet in the cache, dropping the
 * oldest turns after the system prompt when the context would overflow. The
 * turns to drop are searched from those the last prefill dropped (kept across
 * vkllm_chat_clear, for a caller that adds the conversation again each turn)
 * and only windows about as long as the one that fits are rendered: a long
 * conversation (100,000 messages) costs a scan of its roles plus work
 * bounded by the context.
 * Afterwards vkllm_session_logits(session, -1) predicts the reply's first
 * token. VKLLM_E_CONTEXT_FULL when even the last message does not fit; then
 * no turn is dropped, so that popping that message restores the chat. */
int vkllm_chat_prefill(vkllm_chat *c, struct vkllm_chat_turn *info, struct vkllm_error *err);
/* Whether a message can be answered at all: VKLLM_E_CONTEXT_FULL when the
 * system prompt (if any) and the template's own text, with a one-character
 * user message, leave no token for the reply. Renders and counts; decodes
 * nothing, and leaves the messages as they were. */
int vkllm_chat_check(vkllm_chat *c, struct vkllm_error *err);
/* Decodes a sampled reply token (remembering it as cached). */
int vkllm_chat_decode_token(vkllm_chat *c, int32_t token, struct vkllm_error *err);
/* The tokens in the cache, as this conversation knows them (*N of them). */
const int32_t *vkllm_chat_tokens(const vkllm_chat *c, uint32_t *n);

/* Saves the messages as JSON ({"messages": [{"role", "content"}, ...]}),
 * through a temporary file renamed over PATH. */
int vkllm_chat_save(const vkllm_chat *c, const char *path, struct vkllm_error *err);
/* Replaces the messages with those of a file vkllm_chat_save wrote (or any
 * JSON object with such a "messages" array). A file past 256 MiB is refused
 * (VKLLM_E_IO), and so is a system prompt longer than the context can ever
 * hold (VKLLM_E_CONTEXT_FULL); then the messages are left as they were. */
int vkllm_chat_load(vkllm_chat *c, const char *path, struct vkllm_error *err);

#ifdef __cplusplus
}
#endif
#endif /* VKLLM_H */
