/*
 * Test double of Intel's libtdx_attest.so.1 (DCAP QuoteGeneration/quote_wrapper/tdx_attest,
 * tdx_attest.h), so the koffi FFI path of src/tdx/libtdx.ts runs for real without TDX.
 *
 * tdx_att_get_quote() returns a small but well-formed v4 quote (docs/platforms.md layout: 48-byte
 * header, TD report 1.0 with report_data at offset 568, u32 signature-data length, signature data)
 * embedding the caller's report_data, allocated with malloc like the real library; the caller
 * must release it with tdx_att_free_quote(). Tests steer it through the tdx_double_* functions
 * (forced return code, odd outputs, a delay) and read counters to prove every quote was freed and
 * calls never overlapped. Nothing here ships.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  uint8_t d[16];
} tdx_uuid_t;

typedef struct {
  uint8_t d[64];
} tdx_report_data_t;

/* tdx_attest_error_t (tdx_attest.h). */
enum {
  TDX_ATTEST_SUCCESS = 0x0000,
  TDX_ATTEST_ERROR_UNEXPECTED = 0x0001,
  TDX_ATTEST_ERROR_INVALID_PARAMETER = 0x0002,
  TDX_ATTEST_ERROR_OUT_OF_MEMORY = 0x0003,
  TDX_ATTEST_ERROR_MAX = 0x000c
};

/* Behaviours the tests can ask for. */
enum {
  DOUBLE_MODE_NORMAL = 0,
  DOUBLE_MODE_NULL_QUOTE = 1, /* success, but *pp_quote stays NULL */
  DOUBLE_MODE_ZERO_SIZE = 2,  /* success, a buffer, but size 0 */
  DOUBLE_MODE_RC_WITH_QUOTE = 3 /* forced rc, yet a quote is allocated (must still be freed) */
};

#define HEADER_LEN 48u
#define TD10_LEN 584u
#define REPORT_DATA_OFFSET (HEADER_LEN + 520u)
#define MRTD_OFFSET (HEADER_LEN + 136u)

static const char PEM[] = "-----BEGIN LIBTDX DOUBLE-----\nnot a real PCK chain\n-----END LIBTDX DOUBLE-----\n";

static atomic_uint forced_rc;
static atomic_int mode;
static atomic_uint delay_ms;
static atomic_long allocations;
static atomic_long frees;
static atomic_long calls;
static atomic_int in_flight;
static atomic_int max_in_flight;

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v & 0xff);
  p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)((v >> (8 * i)) & 0xff);
}

static uint8_t *build_quote(const uint8_t report_data[64], uint32_t *size) {
  const uint32_t pem_len = (uint32_t)(sizeof(PEM) - 1);
  /* signature (64) + attestation key (64) + cert type (2) + cert size (4) + PEM */
  const uint32_t sig_len = 64u + 64u + 6u + pem_len;
  const uint32_t total = HEADER_LEN + TD10_LEN + 4u + sig_len;
  uint8_t *q = calloc(1, total);
  if (q == NULL) return NULL;
  put_u16(q + 0, 4);       /* version */
  put_u16(q + 2, 2);       /* ECDSA P-256 */
  put_u32(q + 4, 0x81);    /* TDX */
  memcpy(q + 12, "LIBTDX-DOUBLE-QE", 16);
  memset(q + MRTD_OFFSET, 0xd0, 48);
  memcpy(q + REPORT_DATA_OFFSET, report_data, 64);
  uint8_t *s = q + HEADER_LEN + TD10_LEN;
  put_u32(s, sig_len);
  s += 4 + 128;
  put_u16(s, 5);
  put_u32(s + 2, pem_len);
  memcpy(s + 6, PEM, pem_len);
  *size = total;
  atomic_fetch_add(&allocations, 1);
  return q;
}

static void pause_ms(unsigned ms) {
  if (ms == 0) return;
  struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
  nanosleep(&ts, NULL);
}

uint32_t tdx_att_get_quote(const tdx_report_data_t *p_tdx_report_data, const tdx_uuid_t att_key_id_list[],
                           uint32_t list_size, tdx_uuid_t *p_att_key_id, uint8_t **pp_quote,
                           uint32_t *p_quote_size, uint32_t flags) {
  atomic_fetch_add(&calls, 1);
  int now = atomic_fetch_add(&in_flight, 1) + 1;
  int seen = atomic_load(&max_in_flight);
  while (now > seen && !atomic_compare_exchange_weak(&max_in_flight, &seen, now)) {
  }
  pause_ms(atomic_load(&delay_ms));

  uint32_t rc = TDX_ATTEST_SUCCESS;
  /* The real library rejects these the same way. */
  if (p_tdx_report_data == NULL || pp_quote == NULL || p_quote_size == NULL ||
      (att_key_id_list == NULL) != (list_size == 0) || flags != 0) {
    rc = TDX_ATTEST_ERROR_INVALID_PARAMETER;
    goto out;
  }
  rc = atomic_load(&forced_rc);
  int m = atomic_load(&mode);
  if (rc != TDX_ATTEST_SUCCESS && m != DOUBLE_MODE_RC_WITH_QUOTE) goto out;
  if (m == DOUBLE_MODE_NULL_QUOTE) {
    *p_quote_size = 0;
    goto out;
  }
  uint32_t size = 0;
  uint8_t *q = build_quote(p_tdx_report_data->d, &size);
  if (q == NULL) {
    rc = TDX_ATTEST_ERROR_OUT_OF_MEMORY;
    goto out;
  }
  if (p_att_key_id != NULL) memcpy(p_att_key_id->d, "libtdx-double-ak", 16);
  *pp_quote = q;
  *p_quote_size = m == DOUBLE_MODE_ZERO_SIZE ? 0 : size;
out:
  atomic_fetch_sub(&in_flight, 1);
  return rc;
}

uint32_t tdx_att_free_quote(uint8_t *p_quote) {
  if (p_quote != NULL) {
    atomic_fetch_add(&frees, 1);
    free(p_quote);
  }
  return TDX_ATTEST_SUCCESS;
}

/* ---- test controls (not part of Intel's API) ---- */

void tdx_double_reset(void) {
  atomic_store(&forced_rc, 0);
  atomic_store(&mode, DOUBLE_MODE_NORMAL);
  atomic_store(&delay_ms, 0);
  atomic_store(&allocations, 0);
  atomic_store(&frees, 0);
  atomic_store(&calls, 0);
  atomic_store(&max_in_flight, 0);
}

void tdx_double_set_rc(uint32_t rc) { atomic_store(&forced_rc, rc); }
void tdx_double_set_mode(int32_t m) { atomic_store(&mode, m); }
void tdx_double_set_delay_ms(uint32_t ms) { atomic_store(&delay_ms, ms); }
int64_t tdx_double_allocations(void) { return atomic_load(&allocations); }
int64_t tdx_double_frees(void) { return atomic_load(&frees); }
int64_t tdx_double_calls(void) { return atomic_load(&calls); }
int32_t tdx_double_max_in_flight(void) { return atomic_load(&max_in_flight); }
