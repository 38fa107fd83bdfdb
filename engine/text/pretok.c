/* pretok.c: BPE pre-tokenizers: text -> words, exactly as llama.cpp splits it.
 *
 * A BPE vocabulary names its pre-tokenizer in tokenizer.ggml.pre; the table
 * below gives, for every name llama.cpp knows, its list of regular expressions
 * (Hugging Face tokenizers' "Split" steps, as llama.cpp adapted them) and the
 * flags llama.cpp sets with it. Each regex in turn cuts every piece left by the
 * one before it into matches and the text between them.
 *
 * llama.cpp does not run these regexes on the text itself (unicode.cpp's
 * unicode_regex_split), and being exact means doing what it does:
 *   - the text is read as code points, an invalid byte becoming U+FFFD;
 *   - a regex using \p{L}, \p{N}, \p{P}, \p{S} or \p{M} runs on a "collapsed"
 *     copy of the text, one byte per code point: ASCII stays, any other
 *     whitespace becomes \v and any other character one byte for its category
 *     (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4 mark, 0xD5 symbol,
 *     0xD0 anything else), and \p{X} becomes a class of that byte and X's ASCII
 *     members (so \p{Lu} is any letter, and \p{M} never matches ASCII);
 *   - any other regex runs on the code points, with non-ASCII whitespace
 *     turned into \v;
 *   - the most common regexes (GPT-2's, Llama 3's, Qwen 2's, ...) are not run
 *     as regexes at all but by hand-written splitters, whose corner cases
 *     differ from the regex; we have splitters that follow the same rules.
 * Regexes run on PCRE2 with std::regex's ECMAScript semantics: no Unicode
 * properties (UCP off: the collapsed text carries the categories), `$` only at
 * the very end. Categories come from utf8proc.
 *
 * The words come back re-encoded from the code points, as llama.cpp builds
 * them; bpe.c maps their bytes to GPT-2's printable characters.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "vocab_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ============================== The table ============================== */

/* The regexes several families share. */
#define RE_GPT2         "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+"    \
                    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_PORO   " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
#define RE_CJK_JA "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define RE_DEEPSEEK3_WORDS                                                                         \
    "[!\"#$%&'()*+,\\-./"                                                                          \
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
#define RE_CASED(L, CONTR)                                                                         \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[" L "])([^a-z]))*((?=[" L "])([^A-Z]))+" CONTR                     \
    "|[^\\r\\n\\p{L}\\p{N}]?((?=[" L "])([^a-z]))+((?=[" L "])([^A-Z]))*" CONTR
#define RE_CASED_CLASSES(CONTR)                                                                    \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"     \
    "+" CONTR "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}" \
    "\\p{M}]*" CONTR
#define RE_NEWLINES   "[^\\n]+|[\\n]+"
#define RE_TAIL_SLASH "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* clang-format off */
static const struct pretok_info table[] = {
    /* names                                     regexes                      clean ignore bos nobos raw esc */
    {"default",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     true, false, false, false, false, false},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano",
     {RE_LLAMA3}, true, true, true, false, false, false},
    {"minicpm5",
     {"\\p{N}{1,3}", RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
      "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     true, true, false, false, false, false},
    {"jais-2",
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|"
      "\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"},
     true, false, false, false, false, false},
    {"dbrx smaug-bpe", {RE_LLAMA3}, true, false, false, false, false, false},
    {"glm4 chatglm-bpe", {RE_LLAMA3}, true, false, false, true, false, false},
    {"deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"},
     false, false, false, false, false, false},
    {"deepseek-coder",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"},
     false, false, false, false, false, false},
    {"deepseek-v3 hunyuan-dense hy_v4 joyai-llm",
     {"\\p{N}{1,3}", RE_CJK_JA,
      RE_DEEPSEEK3_WORDS "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     false, false, false, false, false, false},
    {"spark2_5",
     {"\\p{N}{1,3}", RE_CJK_JA,
      RE_DEEPSEEK3_WORDS "| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+", "\\p{N}"},
     false, false, false, false, false, false},
    {"youtu",
     {"[\\x{AC00}-\\x{D7A3}\\x{3131}-\\x{318E}]+|[\\x{FF01}\\x{2026}\\x{201C}\\x{201D}\\x{2018}\\x{2019}\\x{2014}\\x{FF1A}\\x{FF1B}\\x{FF0C}\\x{3001}-\\x{303F}\\x{FE30}-\\x{FE4F}]+|[\\x{3105}-\\x{312F}]+|[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      RE_CASED_CLASSES("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?") "|\\p{N}"
      RE_TAIL_SLASH},
     false, true, false, false, false, false},
    {"falcon",
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"},
     true, false, false, false, false, false},
    {"starcoder refact codeshell exaone minerva-7b mellum2",
     {"\\p{N}", RE_GPT2}, true, false, false, false, false, false},
    {"command-r smollm", {"\\p{N}", RE_GPT2}, false, false, false, false, false, false},
    {"gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert "
     "jina-v1-en jina-v2-code roberta-bpe exaone4 mpt olmo jais",
     {RE_GPT2}, true, false, false, false, false, false},
    {"trillion granite-docling", {RE_GPT2}, false, false, false, false, false, false},
    {"gemma4 granite-embed-multi-311m", {RE_NEWLINES}, true, false, false, false, true, true},
    {"sarvam-moe", {RE_NEWLINES}, false, false, false, false, true, true},
    {"whitespace", {"\\S+"}, true, false, false, false, true, false},
    {"qwen2 deepseek-r1-qwen kormo f2llmv2 hunyuan grok-2 solar-open", {RE_QWEN2},
     false, false, false, false, false, false},
    {"stablelm2 megrez", {RE_QWEN2}, true, false, false, false, false, false},
    {"qwen35", {RE_QWEN35}, false, false, false, false, false, false},
    {"poro-chat", {RE_PORO}, false, false, false, false, false, false},
    {"bloom gpt3-finnish", {RE_PORO}, true, false, false, false, false, false},
    {"viking", {RE_PORO, "\\p{N}"}, false, false, false, false, false, false},
    {"tekken", {RE_CASED("\\p{L}", "") "|\\p{N}" RE_TAIL_SLASH},
     false, true, true, false, false, false},
    {"chameleon",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     false, false, true, false, false, false},
    {"gpt-4o llama4 kanana2 talkie minimax-m2",
     {RE_CASED("\\p{L}", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?")
      "|\\p{N}{1,3}" RE_TAIL_SLASH},
     false, false, false, false, false, false},
    {"granite-embed-multi-97m",
     {RE_CASED("\\p{L}\\p{M}", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?")
      "|\\p{N}{1,3}" RE_TAIL_SLASH},
     false, true, false, false, false, false},
    {"tiny_aya cohere2moe",
     {"\\d{1,3}(?=(?:\\d{3})*\\b)",
      RE_CASED_CLASSES("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?")
      "|\\p{N}{1,3}" RE_TAIL_SLASH},
     false, false, false, false, false, false},
    {"kimi-k2", {"\\p{Han}+"}, false, false, false, false, false, false},
    {"superbpe", {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}, false, false, false, false, false, false},
    {"bailingmoe bailingmoe2 llada-moe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
      " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false, false, false, false, false, false},
    {"seed-coder",
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false, false, false, false, false},
    {"ufakzeka",
     {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+"},
     false, false, false, false, false, false},
    {"afmoe",
     {"\\p{AFMoE_digits}",
      "[\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{8C48}-\\x{FAFF}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}\\x{FF65}-\\x{FF9F}\\x{2F00}-\\x{2FDF}\\x{E40}-\\x{E7F}\\x{E80}-\\x{EFF}\\x{1780}-\\x{17FF}\\x{1000}-\\x{109F}\\x{AA60}-\\x{AA7F}\\x{A9E0}-\\x{A9FF}\\x{AC00}-\\x{D7AF}\\x{1100}-\\x{11FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
      " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false, false, false, false, false},
    {"laguna", {RE_NEWLINES, RE_QWEN2}, false, false, false, false, false, false},
    {"exaone-moe",
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}|"
      " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     true, false, false, false, false, false},
};
/* clang-format on */

const struct pretok_info *pretok_default(void)
{
    return &table[0];
}

const struct pretok_info *pretok_find(const char *name, size_t len)
{
    for (size_t i = 0; i < COUNT(table); i++) {
        for (const char *p = table[i].names; *p;) {
            size_t n = strcspn(p, " ");
            if (n == len && memcmp(p, name, len) == 0) return &table[i];
            p += n;
            while (*p == ' ')
                p++;
        }
    }
    return NULL;
}

/* ============================== Code points ============================== */

/* Category bits, as llama.cpp's unicode_cpt_flags. */
enum {
    F_UNDEFINED = 1 << 0,
    F_NUMBER = 1 << 1,
    F_LETTER = 1 << 2,
    F_SEPARATOR = 1 << 3,
    F_MARK = 1 << 4,
    F_PUNCTUATION = 1 << 5,
    F_SYMBOL = 1 << 6,
    F_CONTROL = 1 << 7,
    F_SPACE = 1 << 8, /* Unicode's White_Space */
};

#define CPT_MAX 0x10FFFFu

/* A code point's flags, from its general category; 0 for "no character" (past
 * the end of a piece). White_Space is the Z categories plus \t..\r and U+0085. */
static unsigned cpt_flags(uint32_t c)
{
    if (c > CPT_MAX) return F_UNDEFINED;
    unsigned f;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: f = F_LETTER; break;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: f = F_MARK; break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: f = F_NUMBER; break;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: f = F_PUNCTUATION; break;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO: f = F_SYMBOL; break;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: f = F_SEPARATOR | F_SPACE; break;
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: f = F_CONTROL; break;
    default: f = F_UNDEFINED; break;
    }
    if ((c >= '\t' && c <= '\r') || c == 0x85) f |= F_SPACE;
    return f;
}

/* Reads LEN bytes as llama.cpp's unicode_cpts_from_utf8 does: a lead byte and
 * the continuation bytes it announces make a code point (overlong forms and
 * surrogates included); any other byte is U+FFFD on its own. OUT has room for
 * LEN code points; returns how many. */
static size_t decode_cpts(const char *text, size_t len, uint32_t *out)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint8_t b = s[i];
        size_t need = b < 0x80 ? 0 : b < 0xC0 ? 4 : b < 0xE0 ? 1 : b < 0xF0 ? 2 : b < 0xF8 ? 3 : 4;
        uint32_t c = b & (0x7Fu >> need);
        bool ok = need < 4 && i + need < len;
        for (size_t k = 1; ok && k <= need; k++) {
            ok = (s[i + k] & 0xC0) == 0x80;
            c = (c << 6) | (s[i + k] & 0x3Fu);
        }
        out[n++] = ok ? c : 0xFFFD;
        i += ok ? need + 1 : 1;
    }
    return n;
}

/* UTF-8 of C into OUT (4 bytes); returns the length. Surrogates are written
 * like any code point, as llama.cpp writes them; above U+10FFFF, where
 * llama.cpp throws (and its caller aborts), we write U+FFFD. */
static size_t encode_cpt(uint32_t c, char *out)
{
    uint8_t *o = (uint8_t *)out;
    if (c > CPT_MAX) c = 0xFFFD;
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | (c >> 6));
        o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12));
        o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18));
    o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* ============================== Pieces ============================== */

/* The text is cut into pieces, each a number of code points (possibly 0, as
 * llama.cpp keeps empty matches), in order. */
struct pieces {
    size_t *len;
    size_t n, cap;
};

static int piece_push(struct pieces *p, size_t len)
{
    if (grow((void **)&p->len, &p->cap, p->n + 1, sizeof *p->len)) return VKLLM_E_NOMEM;
    p->len[p->n++] = len;
    return VKLLM_OK;
}

/* What a splitter sees: the code points and one piece of them, [begin, end). */
struct span {
    const uint32_t *cpts;
    size_t begin, end;
    size_t prev_end; /* where the next word starts */
    struct pieces *out;
    int rc;
};

#define NO_CPT 0xFFFFFFFFu

static uint32_t span_cpt(const struct span *s, size_t pos)
{
    return pos >= s->begin && pos < s->end ? s->cpts[pos] : NO_CPT;
}

static unsigned span_flags(const struct span *s, size_t pos)
{
    return pos >= s->begin && pos < s->end ? cpt_flags(s->cpts[pos]) : 0;
}

/* Ends the current word at END (nothing if empty); returns its length. */
static size_t span_cut(struct span *s, size_t end)
{
    size_t len = end - s->prev_end;
    if (len > 0 && s->rc == VKLLM_OK) s->rc = piece_push(s->out, len);
    s->prev_end = end;
    return len;
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The contraction at POS ('s 't 'm 'd 're 've 'll): its length, or 0. */
static size_t contraction(const struct span *s, size_t pos, bool any_case)
{
    if (span_cpt(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = span_cpt(s, pos + 1);
    if (any_case) a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    uint32_t b = span_cpt(s, pos + 2);
    if (any_case) b = ascii_lower(b);
    return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') ? 3 : 0;
}

/* Whitespace from POS: its length, and where the last \r or \n in it ends (0
 * if none). */
static size_t space_run(const struct span *s, size_t pos, size_t *last_newline_end)
{
    size_t n = 0;
    *last_newline_end = 0;
    for (; span_flags(s, pos + n) & F_SPACE; n++) {
        uint32_t c = span_cpt(s, pos + n);
        if (c == '\r' || c == '\n') *last_newline_end = pos + n + 1;
    }
    return n;
}

/* ============================== Hand-written splitters ============================== */

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(struct span *s)
{
    for (size_t pos = s->begin; pos < s->end;) {
        uint32_t c = span_cpt(s, pos);
        size_t n = contraction(s, pos, false);
        if (n) {
            pos += span_cut(s, pos + n);
            continue;
        }
        unsigned f = c == ' ' ? span_flags(s, pos + 1) : span_flags(s, pos);
        unsigned cls = f & F_LETTER ? F_LETTER : f & F_NUMBER ? F_NUMBER : 0;
        if (cls || (!(f & (F_SPACE | F_LETTER | F_NUMBER)) && f)) {
            pos += c == ' ';
            if (cls) {
                while (span_flags(s, pos) & cls)
                    pos++;
            } else {
                for (unsigned g = f; !(g & (F_SPACE | F_LETTER | F_NUMBER)) && g;)
                    g = span_flags(s, ++pos);
            }
            span_cut(s, pos);
            continue;
        }
        size_t nl, spaces = space_run(s, pos, &nl);
        if (spaces > 1 && span_cpt(s, pos + spaces) != NO_CPT) { /* \s+(?!\S) */
            pos += spaces - 1;
            span_cut(s, pos);
        } else if (spaces > 0) {
            pos += spaces;
            span_cut(s, pos);
        } else {
            span_cut(s, ++pos);
        }
    }
}

/* Llama 3 and its kin: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
 * \p{N}{1,DIGITS}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (DIGITS 3: Llama 3; 1: Qwen 2). MARKS: marks count as letters (Qwen 3.5). */
static void split_llama3(struct span *s, size_t digits, bool marks)
{
    const unsigned word = marks ? F_LETTER | F_MARK : F_LETTER;
    for (size_t pos = s->begin; pos < s->end;) {
        uint32_t c = span_cpt(s, pos);
        unsigned f = span_flags(s, pos);
        size_t n = contraction(s, pos, true);
        if (n) {
            pos += span_cut(s, pos + n);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & F_NUMBER)) &&
            ((f & word) || (span_flags(s, pos + 1) & word))) {
            for (pos++; span_flags(s, pos) & word;)
                pos++;
            span_cut(s, pos);
            continue;
        }
        if (f & F_NUMBER) {
            for (size_t start = pos; span_flags(s, pos) & F_NUMBER;) {
                if (++pos - start >= digits) {
                    span_cut(s, pos);
                    start = pos;
                }
            }
            span_cut(s, pos);
            continue;
        }
        const unsigned stop = F_SPACE | F_NUMBER | word;
        unsigned f2 = c == ' ' ? span_flags(s, pos + 1) : f;
        if (!(f2 & stop) && f) {
            pos += c == ' ';
            while (!(f2 & stop) && f2)
                f2 = span_flags(s, ++pos);
            for (uint32_t c2 = span_cpt(s, pos); c2 == '\r' || c2 == '\n';)
                c2 = span_cpt(s, ++pos);
            span_cut(s, pos);
            continue;
        }
        size_t nl, spaces = space_run(s, pos, &nl);
        if (nl > 0) { /* \s*[\r\n]+ */
            pos = nl;
            span_cut(s, pos);
        } else if (spaces > 1 && span_cpt(s, pos + spaces) != NO_CPT) {
            pos += spaces - 1;
            span_cut(s, pos);
        } else if (spaces > 0) {
            pos += spaces;
            span_cut(s, pos);
        } else {
            span_cut(s, ++pos);
        }
    }
}

/* The CJK blocks llama.cpp's unicode_cpt_is_han counts as Han (its own list,
 * not Unicode's Script=Han): Kimi-K2 keeps runs of them together. */
static bool is_han(uint32_t c)
{
    static const uint32_t blocks[][2] = {
        {0x4E00, 0x9FFF},   {0x3400, 0x4DBF},   {0x20000, 0x2A6DF},
        {0x2A700, 0x2B73F}, {0x2B740, 0x2B81F}, {0x2B820, 0x2CEAF},
        {0x2CEB0, 0x2EBEF}, {0xF900, 0xFAFF},   {0x2F800, 0x2FA1F},
    };
    for (size_t i = 0; i < COUNT(blocks); i++)
        if (c >= blocks[i][0] && c <= blocks[i][1]) return true;
    return false;
}

static bool non_han_letter(const struct span *s, size_t pos)
{
    return (span_flags(s, pos) & F_LETTER) && !is_han(span_cpt(s, pos));
}

/* Kimi-K2: [\p{Han}]+, then Llama 3's rules with Han excluded from letters and
 * an optional contraction after a word. */
static void split_kimi_k2(struct span *s)
{
    for (size_t pos = s->begin; pos < s->end;) {
        uint32_t c = span_cpt(s, pos);
        unsigned f = span_flags(s, pos);
        if (is_han(c)) {
            while (is_han(span_cpt(s, pos)))
                pos++;
            span_cut(s, pos);
            continue;
        }
        bool lead_ok = !(c == '\r' || c == '\n' || (f & (F_LETTER | F_NUMBER)));
        if (non_han_letter(s, pos) || (lead_ok && non_han_letter(s, pos + 1))) {
            size_t start = pos;
            if (lead_ok) pos++;
            while (non_han_letter(s, pos))
                pos++;
            if (pos > start + (lead_ok ? 1 : 0)) {
                pos += contraction(s, pos, true);
                span_cut(s, pos);
                continue;
            }
            pos = start;
        }
        if (f & F_NUMBER) {
            for (size_t start = pos; span_flags(s, pos) & F_NUMBER;) {
                if (++pos - start >= 3) {
                    span_cut(s, pos);
                    start = pos;
                }
            }
            span_cut(s, pos);
            continue;
        }
        const unsigned stop = F_SPACE | F_LETTER | F_NUMBER;
        unsigned f2 = c == ' ' ? span_flags(s, pos + 1) : f;
        if (!(f2 & stop) && f2) {
            pos += c == ' ';
            while (!(f2 & stop) && f2)
                f2 = span_flags(s, ++pos);
            for (uint32_t c2 = span_cpt(s, pos); c2 == '\r' || c2 == '\n';)
                c2 = span_cpt(s, ++pos);
            span_cut(s, pos);
            continue;
        }
        size_t nl, spaces = space_run(s, pos, &nl);
        if (nl > 0) {
            pos = nl;
            span_cut(s, pos);
        } else if (spaces > 1 && span_cpt(s, pos + spaces) != NO_CPT) {
            pos += spaces - 1;
            span_cut(s, pos);
        } else if (spaces > 0) {
            pos += spaces;
            span_cut(s, pos);
        } else {
            span_cut(s, ++pos);
        }
    }
}

/* AFMoE's and Tiny Aya's digit grouping: a run of numbers is cut into 1 or 2
 * then threes (1234567 -> 1 234 567). As in llama.cpp, the text before a run
 * joins the run's first group, and only the text after the last run is a word
 * of its own. */
static void split_digit_groups(struct span *s)
{
    for (size_t pos = s->begin; pos < s->end;) {
        if (!(span_flags(s, pos) & F_NUMBER)) {
            pos++;
            continue;
        }
        size_t start = pos;
        while (pos < s->end && (span_flags(s, pos) & F_NUMBER))
            pos++;
        size_t cur = start, rem = (pos - start) % 3;
        if (rem) span_cut(s, cur += rem);
        while (cur < pos)
            span_cut(s, cur += 3);
    }
    if (s->prev_end < s->end) span_cut(s, s->end);
}

/* SuperBPE's (?=(\d{3})+(?!\d)): an empty match, so a cut, before every
 * ASCII digit with a multiple of three digits from it to the end of its run
 * (1234567 -> 1 234 567). As a regex it costs the square of a run's length
 * (minutes for 100,000 digits): each position's lookahead reads to the run's
 * end. */
static void split_digit_triples(struct span *s)
{
    for (size_t pos = s->begin; pos < s->end;) {
        if (s->cpts[pos] < '0' || s->cpts[pos] > '9') {
            pos++;
            continue;
        }
        size_t start = pos;
        while (pos < s->end && s->cpts[pos] >= '0' && s->cpts[pos] <= '9')
            pos++;
        for (size_t q = start + (pos - start) % 3; q + 3 <= pos; q += 3)
            span_cut(s, q);
    }
    span_cut(s, s->end);
}

/* [^\n]+|[\n]+ */
static void split_newlines(struct span *s)
{
    for (size_t pos = s->begin; pos < s->end;) {
        bool nl = s->cpts[pos] == '\n';
        while (pos < s->end && (s->cpts[pos] == '\n') == nl)
            pos++;
        span_cut(s, pos);
    }
}

enum splitter {
    SPLIT_REGEX,
    SPLIT_GPT2,
    SPLIT_LLAMA3,
    SPLIT_QWEN2,
    SPLIT_QWEN35,
    SPLIT_KIMI,
    SPLIT_DIGIT_GROUPS,
    SPLIT_DIGIT_TRIPLES,
    SPLIT_NEWLINES
};

/* The regexes llama.cpp does not run as regexes (unicode_regex_split_custom),
 * recognised by their exact text as it does. */
static const struct {
    const char *regex;
    enum splitter how;
} splitters[] = {
    {RE_GPT2, SPLIT_GPT2},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
     "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     SPLIT_LLAMA3},
    {RE_LLAMA3, SPLIT_LLAMA3},
    {RE_QWEN2, SPLIT_QWEN2},
    {RE_QWEN35, SPLIT_QWEN35},
    {"\\p{Han}+", SPLIT_KIMI},
    {"\\p{AFMoE_digits}", SPLIT_DIGIT_GROUPS},
    {"\\d{1,3}(?=(?:\\d{3})*\\b)", SPLIT_DIGIT_GROUPS},
    {RE_NEWLINES, SPLIT_NEWLINES},
    /* not one of llama.cpp's: a splitter that gives the regex's pieces */
    {"(?=(\\d{3})+(?!\\d))", SPLIT_DIGIT_TRIPLES},
};

/* ============================== Regexes ============================== */

/* The one byte standing for a non-ASCII code point in the collapsed text. */
static char collapse_cpt(uint32_t c)
{
    if (c < 0x80) return (char)c;
    unsigned f = cpt_flags(c);
    if (f & F_SPACE) return '\v';
    switch (f & 0xFF) {
    case F_NUMBER: return (char)0xD1;
    case F_LETTER: return (char)0xD2;
    case F_PUNCTUATION: return (char)0xD3;
    case F_MARK: return (char)0xD4;
    case F_SYMBOL: return (char)0xD5;
    default: return (char)0xD0;
    }
}

/* \p{X} in a collapsed regex: its byte, then X's ASCII members. */
static const struct {
    const char *prop;
    const char *members;
} categories[] = {
    {"\\p{N}", "\\x{D1}0-9"},
    {"\\p{L}", "\\x{D2}A-Za-z"},
    {"\\p{P}", "\\x{D3}!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
    {"\\p{M}", "\\x{D4}"},
    {"\\p{S}", "\\x{D5}\\$\\+<->\\^`\\|~"},
    {"\\p{Lu}", "\\x{D2}A-Za-z"},
    {"\\p{Ll}", "\\x{D2}A-Za-z"},
    {"\\p{Lt}", "\\x{D2}A-Za-z"},
    {"\\p{Lm}", "\\x{D2}A-Za-z"},
    {"\\p{Lo}", "\\x{D2}A-Za-z"},
};

static bool uses_categories(const char *re)
{
    for (size_t i = 0; i < COUNT(categories); i++)
        if (strstr(re, categories[i].prop)) return true;
    return false;
}

/* The collapsed form of RE (malloc'ed): llama.cpp's rewrite, which tracks
 * whether it is inside [...] by unescaped brackets only. */
static char *collapse_regex(const char *re)
{
    size_t n = strlen(re), cap = 16 * n + 1, o = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    bool inside = false;
    for (size_t i = 0; i < n; i++) {
        if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
            out[o++] = '[';
            inside = true;
            continue;
        }
        if (inside && re[i] == ']' && re[i - 1] != '\\') {
            out[o++] = ']';
            inside = false;
            continue;
        }
        size_t k = 0;
        for (; k < COUNT(categories); k++)
            if (strncmp(re + i, categories[k].prop, strlen(categories[k].prop)) == 0) break;
        if (k < COUNT(categories)) {
            size_t m = strlen(categories[k].members);
            if (!inside) out[o++] = '[';
            memcpy(out + o, categories[k].members, m);
            o += m;
            if (!inside) out[o++] = ']';
            i += strlen(categories[k].prop) - 1;
            continue;
        }
        out[o++] = re[i];
    }
    out[o] = 0;
    return out;
}

struct step {
    enum splitter how;
    pcre2_code *code; /* SPLIT_REGEX */
    bool collapsed;   /* runs on the collapsed text, else on the code points */
};

struct pretok {
    const struct pretok_info *info;
    struct step steps[COUNT(((struct pretok_info *)0)->regexes)];
    size_t n_steps;
};

void pretok_destroy(struct pretok *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++)
        pcre2_code_free(p->steps[i].code);
    free(p);
}

int pretok_create(const struct pretok_info *info, struct pretok **out, struct vkllm_error *err)
{
    *out = NULL;
    struct pretok *p = calloc(1, sizeof *p);
    if (!p) return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
    p->info = info;
    for (size_t i = 0; i < COUNT(info->regexes) && info->regexes[i]; i++) {
        const char *re = info->regexes[i];
        struct step *st = &p->steps[p->n_steps++];
        for (size_t k = 0; k < COUNT(splitters); k++)
            if (strcmp(re, splitters[k].regex) == 0) st->how = splitters[k].how;
        if (st->how != SPLIT_REGEX) continue;

        /* ECMAScript's $ is the end of the text only. No UCP: \s, \d and \w
         * are ASCII, as in std::regex in the C locale; the collapsed text
         * carries every other category. */
        uint32_t options = PCRE2_DOLLAR_ENDONLY;
        char *pattern = NULL;
        st->collapsed = uses_categories(re);
        if (st->collapsed) {
            if (!(pattern = collapse_regex(re))) {
                pretok_destroy(p);
                return vkllm_fail(err, VKLLM_E_NOMEM, "out of memory");
            }
        } else {
            options |= PCRE2_UTF | PCRE2_NO_UTF_CHECK;
        }
        int code;
        PCRE2_SIZE at;
        st->code = pcre2_compile((PCRE2_SPTR)(pattern ? pattern : re), PCRE2_ZERO_TERMINATED,
                                 options, &code, &at, NULL);
        free(pattern);
        if (!st->code) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof msg);
            pretok_destroy(p);
            return vkllm_fail(err, VKLLM_E_UNSUPPORTED, "pre-tokenizer regex %zu: %s at %zu", i,
                              (const char *)msg, (size_t)at);
        }
        pcre2_jit_compile(st->code, PCRE2_JIT_COMPLETE); /* without JIT it still works */
    }
    *out = p;
    return VKLLM_OK;
}

/* Every regex match is bounded, so that no text can make one run away: about
 * a second of backtracking, then the call fails. */
#define MATCH_LIMIT    10000000u
#define DEPTH_LIMIT    100000u
#define HEAP_LIMIT_KIB 65536u

/* Per-call state for the regex steps. */
struct run {
    const uint32_t *cpts;
    size_t n;
    char *collapsed; /* (n) one byte per code point, built on first use */
    char *utf8;      /* the code points re-encoded, \v for non-ASCII space */
    size_t *byte_of; /* (n + 1) where code point i starts in utf8 */
    size_t *cpt_of;  /* (utf8 length + 1) the code point at each byte */
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *jit;
};

static int run_prepare(struct run *r, bool collapsed)
{
    if (collapsed && !r->collapsed) {
        if (!(r->collapsed = malloc(r->n + 1))) return VKLLM_E_NOMEM;
        for (size_t i = 0; i < r->n; i++)
            r->collapsed[i] = collapse_cpt(r->cpts[i]);
    }
    if (!collapsed && !r->utf8) {
        r->utf8 = malloc(4 * r->n + 1);
        r->byte_of = malloc((r->n + 1) * sizeof *r->byte_of);
        r->cpt_of = malloc((4 * r->n + 1) * sizeof *r->cpt_of);
        if (!r->utf8 || !r->byte_of || !r->cpt_of) return VKLLM_E_NOMEM;
        size_t o = 0;
        for (size_t i = 0; i < r->n; i++) {
            uint32_t c = r->cpts[i];
            if (c >= 0x80 && (cpt_flags(c) & F_SPACE)) c = '\v';
            /* PCRE2 takes valid UTF-8 only. U+E000 stands in for a surrogate:
             * every class of the table holds both or neither (AFMoE's
             * [...豈-﫿...], whose 豈 is U+8C48 in llama.cpp's source, holds
             * both; negated classes too) */
            if (c >= 0xD800 && c <= 0xDFFF) c = 0xE000;
            r->byte_of[i] = o;
            size_t m = encode_cpt(c, r->utf8 + o);
            for (size_t k = 0; k < m; k++)
                r->cpt_of[o + k] = i;
            o += m;
        }
        r->byte_of[r->n] = o;
        r->cpt_of[o] = r->n;
    }
    if (!r->md) {
        r->md = pcre2_match_data_create(8, NULL);
        r->mc = pcre2_match_context_create(NULL);
        r->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!r->md || !r->mc || !r->jit) return VKLLM_E_NOMEM;
        pcre2_set_match_limit(r->mc, MATCH_LIMIT);
        pcre2_set_depth_limit(r->mc, DEPTH_LIMIT);
        pcre2_set_heap_limit(r->mc, HEAP_LIMIT_KIB);
        pcre2_jit_stack_assign(r->mc, NULL, r->jit);
    }
    return VKLLM_OK;
}

static void run_free(struct run *r)
{
    free(r->collapsed);
    free(r->utf8);
    free(r->byte_of);
    free(r->cpt_of);
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mc);
    pcre2_jit_stack_free(r->jit);
}

/* Splits code points [begin, begin + len) with ST's regex as std::regex_iterator
 * walks a range: matches and the gaps between them become pieces, an empty
 * match too; after an empty match the next must be non-empty there, or the
 * search moves on one character. */
static int split_regex(struct run *r, const struct step *st, size_t begin, size_t len,
                       struct pieces *out)
{
    const char *subject;
    size_t n;
    if (st->collapsed) {
        subject = r->collapsed + begin;
        n = len;
    } else {
        subject = r->utf8 + r->byte_of[begin];
        n = r->byte_of[begin + len] - r->byte_of[begin];
    }
    size_t base = st->collapsed ? begin : r->byte_of[begin];
    /* code points from the start of the piece to byte B of the subject */
#define CPTS_TO(b) (st->collapsed ? (b) : r->cpt_of[base + (b)] - begin)
    size_t last = 0, pos = 0; /* bytes */
    uint32_t options = 0;
    int rc = VKLLM_OK;
    while (pos <= n && rc == VKLLM_OK) {
        int m = pcre2_match(st->code, (PCRE2_SPTR)subject, n, pos, options | PCRE2_NO_UTF_CHECK,
                            r->md, r->mc);
        if (m == PCRE2_ERROR_JIT_STACKLIMIT)
            m = pcre2_match(st->code, (PCRE2_SPTR)subject, n, pos,
                            options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, r->md, r->mc);
        if (m == PCRE2_ERROR_NOMATCH) {
            if (!options || pos >= n) break;
            /* no non-empty match where the empty one was: move on a character */
            pos++;
            while (!st->collapsed && pos < n && (subject[pos] & 0xC0) == 0x80)
                pos++;
            options = 0;
            continue;
        }
        if (m == PCRE2_ERROR_MATCHLIMIT || m == PCRE2_ERROR_DEPTHLIMIT ||
            m == PCRE2_ERROR_HEAPLIMIT)
            return VKLLM_E_TOO_LONG; /* the bounds above: a long run without a break */
        if (m < 0) return m == PCRE2_ERROR_NOMEMORY ? VKLLM_E_NOMEM : VKLLM_E_UNSUPPORTED;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > last) rc = piece_push(out, CPTS_TO(ms) - CPTS_TO(last));
        if (rc == VKLLM_OK) rc = piece_push(out, CPTS_TO(me) - CPTS_TO(ms));
        last = pos = me;
        options = ms == me ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
    }
    if (rc == VKLLM_OK && last < n) rc = piece_push(out, CPTS_TO(n) - CPTS_TO(last));
#undef CPTS_TO
    return rc;
}

/* Applies one step to every piece of IN, appending the new pieces to OUT. */
static int apply_step(struct run *r, const struct step *st, const struct pieces *in,
                      struct pieces *out)
{
    int rc = VKLLM_OK;
    if (st->how == SPLIT_REGEX && (rc = run_prepare(r, st->collapsed))) return rc;
    size_t begin = 0;
    for (size_t i = 0; i < in->n && rc == VKLLM_OK; i++) {
        size_t len = in->len[i];
        if (st->how == SPLIT_REGEX) {
            rc = split_regex(r, st, begin, len, out);
        } else {
            struct span s = {r->cpts, begin, begin + len, begin, out, VKLLM_OK};
            switch (st->how) {
            case SPLIT_GPT2: split_gpt2(&s); break;
            case SPLIT_LLAMA3: split_llama3(&s, 3, false); break;
            case SPLIT_QWEN2: split_llama3(&s, 1, false); break;
            case SPLIT_QWEN35: split_llama3(&s, 1, true); break;
            case SPLIT_KIMI: split_kimi_k2(&s); break;
            case SPLIT_DIGIT_GROUPS: split_digit_groups(&s); break;
            case SPLIT_DIGIT_TRIPLES: split_digit_triples(&s); break;
            case SPLIT_NEWLINES: split_newlines(&s); break;
            case SPLIT_REGEX: break;
            }
            rc = s.rc;
        }
        begin += len;
    }
    return rc;
}

/* ============================== Split ============================== */

void pretok_words_free(struct pretok_words *w)
{
    free(w->text);
    free(w->ends);
    *w = (struct pretok_words){0};
}

int pretok_split(const struct pretok *p, const char *text, size_t len, struct pretok_words *out)
{
    out->len = out->n = 0;
    if (len == 0) return VKLLM_OK;
    struct run r = {0};
    struct pieces a = {0}, b = {0};
    uint32_t *cpts = malloc(len * sizeof *cpts);
    int rc = cpts ? VKLLM_OK : VKLLM_E_NOMEM;
    if (rc == VKLLM_OK) {
        r.cpts = cpts;
        r.n = decode_cpts(text, len, cpts);
        rc = piece_push(&a, r.n);
    }
    for (size_t i = 0; i < p->n_steps && rc == VKLLM_OK; i++) {
        b.n = 0;
        rc = apply_step(&r, &p->steps[i], &a, &b);
        struct pieces t = a;
        a = b;
        b = t;
    }
    /* the words, re-encoded */
    if (rc == VKLLM_OK && (grow((void **)&out->text, &out->text_cap, 4 * r.n + 1, 1) ||
                           grow((void **)&out->ends, &out->ends_cap, a.n + 1, sizeof *out->ends)))
        rc = VKLLM_E_NOMEM;
    size_t c = 0;
    for (size_t i = 0; i < a.n && rc == VKLLM_OK; i++) {
        if (a.len[i] == 0) continue;
        for (size_t k = 0; k < a.len[i]; k++)
            out->len += encode_cpt(cpts[c++], out->text + out->len);
        out->ends[out->n++] = out->len;
    }
    run_free(&r);
    free(a.len);
    free(b.len);
    free(cpts);
    return rc;
}
