/* Unit tests for sc_keys (ClusterSecretFile): key files in hex, base64
 * (with and without line wraps, with padding) and raw bytes all give the
 * same keys for the same material; a passphrase, too little material (31
 * bytes in any form), a file open to group or others (with a reason naming
 * chmod), anything but a regular file, an oversized file, and two files
 * holding the same key are refused; the PSK, heartbeat key and key id are
 * the HKDF-SHA256 outputs computed independently with Python's cryptography
 * package (known answers below); sc_keys_none, sc_keys_find, sc_keys_ids.
 * Files live in a directory made with mkdtemp and removed at the end. Runs
 * under ASan/UBSan. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "sc_keys.h"
#include "sc_test.h"

static apr_pool_t *pool;
static char dir[] = "/tmp/sc_keys_test_XXXXXX";
static int nfiles;

/* Known answers (Python: HKDF(SHA256, length, salt=None, info).derive(M)). */
/* M = bytes 0x00..0x1f */
#define M0_ID  "df60ba45"
#define M0_PSK "f844031762bfe8ced7ef604948e395682e74e43cf60a40837b13030773026769"
#define M0_HB  "a288a2ae5d05e39c2aad2ae0de7bb5dbe1ff4703f265fa633319905ee0948692"
#define M0_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define M0_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
/* M = bytes 0x20..0x5f (64 bytes), base64 as `openssl rand -base64 64` wraps it */
#define M2_ID  "bb47467d"
#define M2_PSK "52a0112c5c637087eb8abeb6af9614db21630b27f1f47d05a669159cfcb7beda"
#define M2_HB  "2205ffbf8275f321457f53e469d871f943a316ca3e2bc8ce0bd4a3328c345d11"
#define M2_B64 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5P\n" \
               "UFFSU1RVVldYWVpbXF1eXw==\n"
/* raw M = 00 ff 80 7f, bytes 0x20..0x3a, 0a: ends with a newline byte,
 * which is key material like any other byte of a raw key */
#define RAW_ID  "1dea57dd"
#define RAW_PSK "e97f6c74e082de1778f624074cae65faa5334201bb66aa3a8547ee1b745eefca"
#define RAW_HB  "16c507039362be44a3d74e2fba9864e0efeb6198ec268469a3aaaf734eddd970"
/* `ClusterSecretFile none` */
#define NONE_ID  "0f9eeee0"
#define NONE_PSK "6ca2bfabb6d891f5f537a6b6b8b4ca5269149cac53df3f301418c8168a0c1d39"
#define NONE_HB  "3f2e6d5804c358f6d3e87dedcfcbd9b8e7662e579c9f51f9d40d39064eaf1c91"

static int eq_hex(const unsigned char *key, const char *hex)
{
    unsigned char want[SC_KEY_BYTES];
    sc_test_from_hex(hex, want, sizeof(want));
    return !memcmp(key, want, sizeof(want));
}

/* A file in the temp dir with these bytes and this mode. */
static const char *key_file(const void *bytes, apr_size_t len, mode_t mode)
{
    char *path = apr_psprintf(pool, "%s/key%d", dir, nfiles++);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    const char *b = bytes;
    apr_size_t left = len;

    if (fd < 0)
        return NULL;
    while (left) {
        ssize_t w = write(fd, b, left);
        if (w <= 0) {
            close(fd);
            return NULL;
        }
        b += w;
        left -= (apr_size_t)w;
    }
    close(fd);
    return chmod(path, mode) == 0 ? path : NULL;
}

static const char *text_file(const char *text, mode_t mode)
{
    return key_file(text, strlen(text), mode);
}

/* Load one file into slot 0 of k: the status, *why set on failure. */
static apr_status_t load(sc_keys *k, const char *path, const char **why)
{
    *why = NULL;
    if (!path)
        return APR_EGENERAL;
    return sc_keys_add_file(k, 0, path, pool, why);
}

/* Refused with a status other than success and a reason containing want. */
static int refused(const char *path, const char *want)
{
    sc_keys k;
    const char *why = NULL;
    apr_status_t rv = load(&k, path, &why);

    if (rv == APR_SUCCESS || !path) {
        fprintf(stderr, "  %s: accepted (or not written), want refused: %s\n",
                path ? path : "(null)", want);
        return 0;
    }
    if (!why || !strstr(why, want)) {
        fprintf(stderr, "  %s: refused with \"%s\", want \"%s\"\n", path,
                why ? why : "(null)", want);
        return 0;
    }
    return 1;
}

static int holds(const char *path, const char *id, const char *psk, const char *hb)
{
    sc_keys k;
    const char *why = NULL;

    if (load(&k, path, &why) != APR_SUCCESS) {
        fprintf(stderr, "  %s: refused: %s\n", path ? path : "(null)", why ? why : "");
        return 0;
    }
    if (k.n != 1 || k.none || strcmp(k.id[0], id) || !eq_hex(k.psk[0], psk)
        || !eq_hex(k.heartbeat[0], hb)) {
        fprintf(stderr, "  %s: n=%d none=%d id=%s, want id %s\n", path, k.n, k.none,
                k.id[0], id);
        return 0;
    }
    return 1;
}

/* ---- formats --------------------------------------------------------------- */

static void test_hex(void)
{
    CHECK(holds(text_file(M0_HEX "\n", 0600), M0_ID, M0_PSK, M0_HB));
    CHECK(holds(text_file(M0_HEX, 0600), M0_ID, M0_PSK, M0_HB));
    CHECK(holds(text_file("\r\n  " M0_HEX " \r\n\n", 0600), M0_ID, M0_PSK, M0_HB));
    CHECK(holds(text_file("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n",
                          0600), M0_ID, M0_PSK, M0_HB));
    /* saved by an editor that puts a UTF-8 byte order mark first */
    CHECK(holds(text_file("\xef\xbb\xbf" M0_HEX "\n", 0600), M0_ID, M0_PSK, M0_HB));
}

static void test_base64(void)
{
    /* one line with padding, as `openssl rand -base64 32` writes it */
    CHECK(holds(text_file(M0_B64 "\n", 0600), M0_ID, M0_PSK, M0_HB));
    CHECK(holds(text_file(M0_B64, 0600), M0_ID, M0_PSK, M0_HB));
    /* wrapped lines with "==" padding, as `openssl rand -base64 64` */
    CHECK(holds(text_file(M2_B64, 0600), M2_ID, M2_PSK, M2_HB));
    /* CRLF line ends, and wrapped anywhere */
    CHECK(holds(text_file("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5P\r\n"
                          "UFFSU1RVVldYWVpbXF1eXw==\r\n", 0600), M2_ID, M2_PSK, M2_HB));
    CHECK(holds(text_file("AAECAwQF\nBgcICQoLDA0ODx\nAREhMUFRYXGBkaGxwdHh8\n=\n", 0600),
                M0_ID, M0_PSK, M0_HB));
    /* not base64: a character outside its alphabet, '=' in the middle,
     * three '=', a length that is no multiple of 4 */
    CHECK(refused(text_file("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd*h8=\n", 0600),
                  "passphrase"));
    CHECK(refused(text_file("AAECAwQFBgcICQoLDA0O=xAREhMUFRYXGBkaGxwdHh8=\n", 0600),
                  "passphrase"));
    CHECK(refused(text_file("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAB===\n", 0600),
                  "passphrase"));
    CHECK(refused(text_file("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AA\n", 0600),
                  "passphrase"));
}

static void test_raw(void)
{
    unsigned char raw[32], zeros[40], big[64 * 1024];
    int i;

    raw[0] = 0x00; raw[1] = 0xff; raw[2] = 0x80; raw[3] = 0x7f;
    for (i = 0; i < 27; i++)
        raw[4 + i] = (unsigned char)(0x20 + i);
    raw[31] = 0x0a;
    CHECK(holds(key_file(raw, sizeof(raw), 0600), RAW_ID, RAW_PSK, RAW_HB));
    /* bytes 0x00..0x1f raw are M0, the same key as its hex and base64 */
    for (i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    CHECK(holds(key_file(raw, sizeof(raw), 0600), M0_ID, M0_PSK, M0_HB));
    /* all zeros is no text: raw material (weak, but not ours to judge) */
    memset(zeros, 0, sizeof(zeros));
    {
        sc_keys k;
        const char *why;
        CHECK(load(&k, key_file(zeros, 40, 0600), &why) == APR_SUCCESS && k.n == 1);
    }
    /* the largest file a key may be, and one byte more */
    for (i = 0; i < (int)sizeof(big); i++)
        big[i] = (unsigned char)(i * 7 + 1);
    {
        sc_keys k;
        const char *why;
        CHECK(load(&k, key_file(big, sizeof(big), 0600), &why) == APR_SUCCESS);
    }
    {
        char *bigger = malloc(sizeof(big) + 1);
        memcpy(bigger, big, sizeof(big));
        bigger[sizeof(big)] = 1;
        CHECK(refused(key_file(bigger, sizeof(big) + 1, 0600), "larger than"));
        free(bigger);
    }
}

static void test_passphrase_refused(void)
{
    CHECK(refused(text_file("correct horse battery staple and some more words\n", 0600),
                  "passphrase"));
    CHECK(refused(text_file("this is my cluster password, do not tell anyone!!", 0600),
                  "passphrase"));
    /* hex with colons (as `openssl x509 -fingerprint` prints it), or an odd
     * number of digits (one digit with a 'g' would be base64, and taken) */
    CHECK(refused(text_file("00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:"
                            "14:15:16:17:18:19:1a:1b:1c:1d:1e:1f\n", 0600), "passphrase"));
    CHECK(refused(text_file("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0\n",
                            0600), "passphrase"));
    /* printable but short: still a passphrase */
    CHECK(refused(text_file("hunter2\n", 0600), "passphrase"));
    /* a passphrase in another script is text too (UTF-8), not raw bytes */
    CHECK(refused(text_file("\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c "
                            "\xd0\xba\xd0\xbb\xd0\xb0\xd1\x81\xd1\x82\xd0\xb5"
                            "\xd1\x80\xd0\xb0 \xd0\xbe\xd1\x87\xd0\xb5\xd0\xbd"
                            "\xd1\x8c \xd0\xb4\xd0\xbb\xd0\xb8\xd0\xbd\xd0\xbd"
                            "\xd1\x8b\xd0\xb9\n", 0600), "passphrase"));
}

static void test_too_short(void)
{
    unsigned char raw[31];
    int i;

    /* 31 bytes of material in each form */
    CHECK(refused(text_file("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n",
                            0600), "31 bytes"));
    CHECK(refused(text_file("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", 0600),
                  "31 bytes"));
    for (i = 0; i < 31; i++)
        raw[i] = (unsigned char)(0x80 + i);
    CHECK(refused(key_file(raw, sizeof(raw), 0600), "31 bytes"));
    CHECK(refused(key_file("", 0, 0600), "0 bytes"));
    CHECK(refused(text_file(" \n\t\r\n", 0600), "0 bytes"));
    CHECK(refused(text_file("00\n", 0600), "1 bytes"));
}

/* ---- the file itself ------------------------------------------------------------ */

static void test_modes(void)
{
    static const mode_t bad[] = { 0640, 0604, 0660, 0644, 0602, 0620, 0610, 0601,
                                  0666, 0440, 0404 };
    static const mode_t good[] = { 0600, 0400, 0700 };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *path = text_file(M0_HEX "\n", bad[i]);
        sc_keys k;
        const char *why = NULL;
        apr_status_t rv = load(&k, path, &why);
        if (rv != APR_EACCES || !why || !strstr(why, "chmod 600")) {
            fprintf(stderr, "  mode %04o: rv %d, why \"%s\"\n", (unsigned)bad[i], rv,
                    why ? why : "(null)");
            CHECK(0);
        }
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!holds(text_file(M0_HEX "\n", good[i]), M0_ID, M0_PSK, M0_HB)) {
            fprintf(stderr, "  mode %04o refused\n", (unsigned)good[i]);
            CHECK(0);
        }
    }
    /* a symbolic link counts as what it points to (links are 0777 themselves) */
    {
        const char *target = text_file(M0_HEX "\n", 0600);
        char *link = apr_psprintf(pool, "%s/link%d", dir, nfiles++);
        CHECK(target && symlink(target, link) == 0);
        CHECK(holds(link, M0_ID, M0_PSK, M0_HB));
        target = text_file(M0_HEX "\n", 0644);
        link = apr_psprintf(pool, "%s/link%d", dir, nfiles++);
        CHECK(target && symlink(target, link) == 0);
        CHECK(refused(link, "chmod"));
    }
}

static void test_not_a_regular_file(void)
{
    char *sub = apr_psprintf(pool, "%s/subdir", dir);
    char *fifo = apr_psprintf(pool, "%s/fifo", dir);

    CHECK(mkdir(sub, 0700) == 0);
    CHECK(refused(sub, "not a readable file"));
    /* a FIFO must be refused before it is opened (opening would block) */
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(refused(fifo, "not a readable file"));
    CHECK(refused("/dev/null", "not a readable file"));
    CHECK(refused(apr_psprintf(pool, "%s/missing", dir), "not a readable file"));
    CHECK(rmdir(sub) == 0);
    CHECK(unlink(fifo) == 0);
}

/* ---- two files, slots, ids ----------------------------------------------------- */

static void test_two_files(void)
{
    sc_keys k;
    const char *why = NULL;
    const char *a = text_file(M0_HEX "\n", 0600), *b = text_file(M2_B64, 0600);

    CHECK(sc_keys_add_file(&k, 0, b, pool, &why) == APR_SUCCESS && k.n == 1);
    CHECK(sc_keys_add_file(&k, 1, a, pool, &why) == APR_SUCCESS && k.n == 2);
    CHECK(!k.none);
    CHECK(!strcmp(k.id[0], M2_ID) && !strcmp(k.id[1], M0_ID));
    CHECK(eq_hex(k.psk[0], M2_PSK) && eq_hex(k.heartbeat[0], M2_HB));
    CHECK(eq_hex(k.psk[1], M0_PSK) && eq_hex(k.heartbeat[1], M0_HB));
    CHECK(!strcmp(sc_keys_ids(&k, pool), M2_ID ", " M0_ID));
    CHECK(sc_keys_find(&k, M2_ID, 8) == 0 && sc_keys_find(&k, M0_ID, 8) == 1);
    /* slot 0 again starts afresh */
    CHECK(sc_keys_add_file(&k, 0, a, pool, &why) == APR_SUCCESS && k.n == 1);
    CHECK(!strcmp(sc_keys_ids(&k, pool), M0_ID) && sc_keys_find(&k, M2_ID, 8) == -1);
    /* no third slot */
    why = NULL;
    CHECK(sc_keys_add_file(&k, 2, a, pool, &why) == APR_EINVAL && why);
    why = NULL;
    CHECK(sc_keys_add_file(&k, -1, a, pool, &why) == APR_EINVAL && why);
    /* a bad second file says why */
    CHECK(sc_keys_add_file(&k, 0, a, pool, &why) == APR_SUCCESS);
    why = NULL;
    CHECK(sc_keys_add_file(&k, 1, text_file(M2_B64, 0644), pool, &why) == APR_EACCES
          && why && strstr(why, "chmod"));
}

static void test_same_key_twice_refused(void)
{
    unsigned char raw[32];
    const char *hex = text_file(M0_HEX "\n", 0600);
    sc_keys k;
    const char *why;
    int i;

    for (i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    /* the same material written three ways is the same key */
    {
        const char *others[] = { hex, text_file(M0_B64 "\n", 0600),
                                 key_file(raw, sizeof(raw), 0600) };
        for (i = 0; i < 3; i++) {
            CHECK(sc_keys_add_file(&k, 0, hex, pool, &why) == APR_SUCCESS);
            why = NULL;
            CHECK(sc_keys_add_file(&k, 1, others[i], pool, &why) == APR_EINVAL
                  && why && strstr(why, "same key"));
        }
    }
}

static void test_deterministic(void)
{
    const char *b = text_file(M2_B64, 0600);
    sc_keys k1, k2;
    const char *why;

    CHECK(load(&k1, b, &why) == APR_SUCCESS);
    CHECK(load(&k2, text_file(M2_B64, 0600), &why) == APR_SUCCESS);
    CHECK(!strcmp(k1.id[0], k2.id[0]) && !memcmp(k1.psk[0], k2.psk[0], SC_KEY_BYTES)
          && !memcmp(k1.heartbeat[0], k2.heartbeat[0], SC_KEY_BYTES));
    /* the three derived keys differ from each other and from the material */
    CHECK(memcmp(k1.psk[0], k1.heartbeat[0], SC_KEY_BYTES));
    CHECK(strlen(k1.id[0]) == SC_KEY_ID_LEN);
    for (const char *c = k1.id[0]; *c; c++)
        CHECK(strchr("0123456789abcdef", *c) != NULL);
}

static void test_hkdf_known_answer(void)
{
    /* heartbeat sender key: HKDF(key 0x40..0x5f, salt 0xa0..0xaf,
     * "sc2 heartbeat sender"), the one test_wire's sealed heartbeat uses */
    unsigned char ikm[32], salt[16], out[32], id[4];
    int i;

    for (i = 0; i < 32; i++)
        ikm[i] = (unsigned char)(0x40 + i);
    for (i = 0; i < 16; i++)
        salt[i] = (unsigned char)(0xa0 + i);
    CHECK(sc_keys_hkdf(ikm, 32, salt, 16, "sc2 heartbeat sender", out, 32) == APR_SUCCESS);
    CHECK(eq_hex(out, "6a6ceec5c74ad208367d5598fcff1069910870817ad8b2ef7d73d4e20eddcf4c"));
    for (i = 0; i < 32; i++)
        ikm[i] = (unsigned char)i;
    CHECK(sc_keys_hkdf(ikm, 32, NULL, 0, "sc2 tls psk", out, 32) == APR_SUCCESS);
    CHECK(eq_hex(out, M0_PSK));
    CHECK(sc_keys_hkdf(ikm, 32, NULL, 0, "sc2 key id", id, 4) == APR_SUCCESS);
    CHECK(id[0] == 0xdf && id[1] == 0x60 && id[2] == 0xba && id[3] == 0x45);
}

static void test_none(void)
{
    sc_keys k;

    memset(&k, 0xee, sizeof(k));
    CHECK(sc_keys_none(&k) == APR_SUCCESS);
    CHECK(k.n == 1 && k.none == 1);
    CHECK(!strcmp(k.id[0], NONE_ID));
    CHECK(eq_hex(k.psk[0], NONE_PSK) && eq_hex(k.heartbeat[0], NONE_HB));
    CHECK(!strcmp(sc_keys_ids(&k, pool), "none"));
    CHECK(sc_keys_find(&k, NONE_ID, 8) == 0);
    /* a file's key is no `none` */
    {
        const char *why;
        CHECK(load(&k, text_file(M0_HEX, 0600), &why) == APR_SUCCESS && !k.none);
    }
}

static void test_find_and_ids(void)
{
    sc_keys k;
    const char *why;

    CHECK(load(&k, text_file(M0_HEX, 0600), &why) == APR_SUCCESS);
    CHECK(!strcmp(sc_keys_ids(&k, pool), M0_ID));
    CHECK(sc_keys_find(&k, M0_ID, 8) == 0);
    CHECK(sc_keys_find(&k, M0_ID "xx", 8) == 0);        /* only len bytes count */
    CHECK(sc_keys_find(&k, M0_ID, 7) == -1);
    CHECK(sc_keys_find(&k, M0_ID "0", 9) == -1);
    CHECK(sc_keys_find(&k, M2_ID, 8) == -1);
    CHECK(sc_keys_find(&k, "DF60BA45", 8) == -1);       /* ids are lower case */
    CHECK(sc_keys_find(&k, "\0\0\0\0\0\0\0\0", 8) == -1); /* the empty slot 1 */
    CHECK(sc_keys_find(&k, "", 0) == -1);
}

/* Direct calls of the decoder: a buffer exactly as long as the input, so
 * ASan sees any read past it. */
static void test_material_direct(void)
{
    static const char *const texts[] = { M0_HEX, M0_B64, M2_B64, "x", "", "=", "==",
                                         "====", "A===", "AA=A", " \n " };
    unsigned char *out;
    apr_size_t len, i;
    const char *why;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        apr_size_t n = strlen(texts[i]);
        unsigned char *in = malloc(n ? n : 1);
        apr_status_t rv;
        memcpy(in, texts[i], n);
        why = NULL;
        rv = sc_keys_material(in, n, pool, &out, &len, &why);
        CHECK(i < 3 ? rv == APR_SUCCESS && len >= 32 : rv == APR_EINVAL && why);
        free(in);
    }
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_hex);
    RUN(test_base64);
    RUN(test_raw);
    RUN(test_passphrase_refused);
    RUN(test_too_short);
    RUN(test_modes);
    RUN(test_not_a_regular_file);
    RUN(test_two_files);
    RUN(test_same_key_twice_refused);
    RUN(test_deterministic);
    RUN(test_hkdf_known_answer);
    RUN(test_none);
    RUN(test_find_and_ids);
    RUN(test_material_direct);
    {
        /* remove what was written */
        int i;
        for (i = 0; i < nfiles; i++) {
            char *f = apr_psprintf(pool, "%s/key%d", dir, i);
            char *l = apr_psprintf(pool, "%s/link%d", dir, i);
            if (unlink(f) && errno != ENOENT)
                perror(f);
            if (unlink(l) && errno != ENOENT)
                perror(l);
        }
        if (rmdir(dir))
            perror(dir);
    }
    apr_pool_destroy(pool);
    return sc_test_report("test_keys");
}
