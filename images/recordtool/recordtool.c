/*
 * recordtool: decode one fixed-layout binary record and print it as one line of JSON.
 *
 * Record layout (30 bytes, every field little-endian whatever the host's byte order):
 *   offset  0  u16  magic    0x5243 (the bytes "CR")
 *   offset  2  u32  id
 *   offset  6  i64  value    two's complement
 *   offset 14  f64  reading  IEEE 754 binary64
 *   offset 22  8    name     ASCII, NUL-padded
 *
 * Every field is assembled byte by byte, so the output is the same on little- and
 * big-endian machines. Besides the fields it reports what it ran on: word_bits
 * (sizeof(void *) * 8), byte_order (probed at run time), machine (uname(2)) and
 * built_for (the platform the binary was compiled for).
 *
 * Exit codes: 0 decoded, 2 unreadable/short/bad record, 64 usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#ifndef RECORDTOOL_BUILT_FOR
#define RECORDTOOL_BUILT_FOR "unknown"
#endif

#define RECORD_SIZE 30
#define RECORD_MAGIC 0x5243u

static uint64_t le_uint(const unsigned char *p, int n)
{
    uint64_t v = 0;
    int i;
    for (i = n - 1; i >= 0; i--)
        v = (v << 8) | (uint64_t)p[i];
    return v;
}

static int64_t to_int64(uint64_t u)
{
    /* Portable two's complement conversion, no implementation-defined cast. */
    if (u <= (uint64_t)INT64_MAX)
        return (int64_t)u;
    return -(int64_t)(~u) - 1;
}

static double to_double(uint64_t bits)
{
    double d;
    /* Every supported target stores doubles with the same byte order as integers. */
    memcpy(&d, &bits, sizeof d);
    return d;
}

static const char *runtime_byte_order(void)
{
    const uint32_t probe = 0x01020304u;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 0x04 ? "little" : "big";
}

static void json_string(const char *s, size_t n)
{
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void usage(FILE *out)
{
    fputs("usage: recordtool [FILE]\n"
          "Decode one 30-byte little-endian record from FILE (or standard input, or '-')\n"
          "and print it as one line of JSON.\n",
          out);
}

int main(int argc, char **argv)
{
    unsigned char rec[RECORD_SIZE + 1];
    const char *path = "-";
    FILE *in = stdin;
    size_t got;
    int extra;
    struct utsname uts;
    size_t name_len;
    double reading;

    if (argc > 2) {
        usage(stderr);
        return 64;
    }
    if (argc == 2) {
        if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (argv[1][0] == '-' && argv[1][1] != '\0') {
            fprintf(stderr, "recordtool: unknown option: %s\n", argv[1]);
            usage(stderr);
            return 64;
        }
        path = argv[1];
    }
    if (strcmp(path, "-") != 0) {
        in = fopen(path, "rb");
        if (in == NULL) {
            fprintf(stderr, "recordtool: cannot open %s: %s\n", path, strerror(errno));
            return 2;
        }
    }
    got = fread(rec, 1, RECORD_SIZE, in);
    extra = (got == RECORD_SIZE) ? getc(in) : EOF;
    if (in != stdin)
        fclose(in);
    if (got < RECORD_SIZE) {
        fprintf(stderr, "recordtool: %s: short record: %lu of %d bytes\n", path,
                (unsigned long)got, RECORD_SIZE);
        return 2;
    }
    if (extra != EOF) {
        fprintf(stderr, "recordtool: %s: trailing data after the %d-byte record\n", path,
                RECORD_SIZE);
        return 2;
    }
    if (le_uint(rec, 2) != RECORD_MAGIC) {
        fprintf(stderr, "recordtool: %s: bad magic 0x%04" PRIx64 " (expected 0x%04x)\n", path,
                le_uint(rec, 2), RECORD_MAGIC);
        return 2;
    }
    if (uname(&uts) != 0) {
        fprintf(stderr, "recordtool: uname: %s\n", strerror(errno));
        return 1;
    }

    for (name_len = 0; name_len < 8 && rec[22 + name_len] != '\0'; name_len++)
        ;

    reading = to_double(le_uint(rec + 14, 8));
    printf("{\"magic\": %" PRIu64 ", \"id\": %" PRIu64 ", \"value\": %" PRId64
           ", \"reading\": ",
           le_uint(rec, 2), le_uint(rec + 2, 4), to_int64(le_uint(rec + 6, 8)));
    if (reading != reading || reading - reading != 0.0)
        fputs("null", stdout); /* NaN and infinities have no JSON spelling */
    else
        printf("%.17g", reading);
    fputs(", \"name\": ", stdout);
    json_string((const char *)rec + 22, name_len);
    printf(", \"word_bits\": %u, \"byte_order\": \"%s\", \"machine\": ",
           (unsigned)(sizeof(void *) * 8), runtime_byte_order());
    json_string(uts.machine, strlen(uts.machine));
    printf(", \"built_for\": ");
    json_string(RECORDTOOL_BUILT_FOR, strlen(RECORDTOOL_BUILT_FOR));
    printf("}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
