/*
 * Test double of NVIDIA's libnvidia-ml.so.1 (NVML, nvml.h), so the koffi FFI path of
 * src/gpu/nvml.ts runs for real without a GPU: same symbol names, same struct layouts
 * (docs/platforms.md, "NVIDIA GPU evidence"), same return codes (nvmlReturn_t). Nothing here ships.
 *
 * Evidence must pass the local check (a real P-384 signature by a chain to the synthetic root), and
 * this file links no crypto library. So the test signs instead: it writes, per GPU, evidence for
 * the nonce it is about to ask for into a folder (gpu<i>.evidence = raw SPDM bytes, gpu<i>.chain =
 * PEM chain) and names that folder with nvml_double_set_dir(). Like the real GPU, the double binds
 * the report to the nonce the caller put at offset 12 of nvmlConfComputeGpuAttestationReport_t: it
 * answers only when that nonce equals the one inside the prepared evidence (bytes [4, 36)), and
 * NVML_ERROR_INVALID_ARGUMENT otherwise, so a caller that forgets the nonce fails.
 *
 * Tests steer it through the nvml_double_* functions (GPU count, architecture, CC state, a forced
 * return code per function, a delay) and read counters that prove calls never overlapped and that
 * init/shutdown pair up.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;

/* nvmlReturn_t values used here (nvml.h). */
enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_FUNCTION_NOT_FOUND = 13,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
  NVML_ERROR_UNKNOWN = 999
};

#define MAX_GPUS 16
#define MAX_DIR 1024

/* nvmlConfComputeSystemState_t: environment @0, ccFeature @4, devToolsMode @8 (12 B). */
typedef struct {
  unsigned int environment;
  unsigned int ccFeature;
  unsigned int devToolsMode;
} nvmlConfComputeSystemState_t;

/* nvmlSystemConfComputeSettings_v1_t (20 B); version = NVML_STRUCT_VERSION(.., 1) = 0x1000014. */
typedef struct {
  unsigned int version;
  unsigned int environment;
  unsigned int ccFeature;
  unsigned int devToolsMode;
  unsigned int multiGpuMode;
} nvmlSystemConfComputeSettings_t;
#define SETTINGS_V1 ((unsigned int)(sizeof(nvmlSystemConfComputeSettings_t) | (1u << 24)))

/* nvmlConfComputeGpuAttestationReport_t (12,332 B). */
#define ATTESTATION_REPORT_SIZE 8192
#define CEC_ATTESTATION_REPORT_SIZE 4096
#define NONCE_SIZE 32
typedef struct {
  unsigned int isCecAttestationReportPresent;
  unsigned int attestationReportSize;
  unsigned int cecAttestationReportSize;
  unsigned char nonce[NONCE_SIZE];
  unsigned char attestationReport[ATTESTATION_REPORT_SIZE];
  unsigned char cecAttestationReport[CEC_ATTESTATION_REPORT_SIZE];
} nvmlConfComputeGpuAttestationReport_t;

/* nvmlConfComputeGpuCertificate_t (9,224 B). */
#define GPU_CERT_CHAIN_SIZE 4096
#define GPU_ATTESTATION_CERT_CHAIN_SIZE 5120
typedef struct {
  unsigned int certChainSize;
  unsigned int attestationCertChainSize;
  unsigned char certChain[GPU_CERT_CHAIN_SIZE];
  unsigned char attestationCertChain[GPU_ATTESTATION_CERT_CHAIN_SIZE];
} nvmlConfComputeGpuCertificate_t;

/* Layout checks: a drift here would make the double agree with a wrong binding. */
_Static_assert(sizeof(nvmlConfComputeSystemState_t) == 12, "state size");
_Static_assert(sizeof(nvmlSystemConfComputeSettings_t) == 20, "settings size");
_Static_assert(SETTINGS_V1 == 0x1000014u, "settings version");
_Static_assert(sizeof(nvmlConfComputeGpuAttestationReport_t) == 12332, "report size");
_Static_assert(offsetof(nvmlConfComputeGpuAttestationReport_t, nonce) == 12, "nonce offset");
_Static_assert(offsetof(nvmlConfComputeGpuAttestationReport_t, attestationReport) == 44, "report offset");
_Static_assert(offsetof(nvmlConfComputeGpuAttestationReport_t, cecAttestationReport) == 8236, "cec offset");
_Static_assert(sizeof(nvmlConfComputeGpuCertificate_t) == 9224, "certificate size");
_Static_assert(offsetof(nvmlConfComputeGpuCertificate_t, attestationCertChain) == 4104, "chain offset");

/* nvmlDevice_t is an opaque pointer; ours point into this array. */
typedef struct {
  unsigned int index;
} double_device_t;
typedef double_device_t *nvmlDevice_t;

static double_device_t devices[MAX_GPUS];

/* Functions a test can make fail (nvml_double_fail). */
enum {
  FN_INIT,
  FN_COUNT,
  FN_HANDLE,
  FN_STATE,
  FN_SETTINGS,
  FN_ARCH,
  FN_UUID,
  FN_DRIVER,
  FN_VBIOS,
  FN_REPORT,
  FN_CERT,
  FN_SHUTDOWN,
  FN_MAX
};
static const char *const FN_NAMES[FN_MAX] = {
    "nvmlInit_v2",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlSystemGetConfComputeState",
    "nvmlSystemGetConfComputeSettings",
    "nvmlDeviceGetArchitecture",
    "nvmlDeviceGetUUID",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetVbiosVersion",
    "nvmlDeviceGetConfComputeGpuAttestationReport",
    "nvmlDeviceGetConfComputeGpuCertificate",
    "nvmlShutdown",
};

static atomic_int forced_rc[FN_MAX];
static atomic_uint gpu_count = 1;
static atomic_uint architecture = 9; /* NVML_DEVICE_ARCH_HOPPER */
static atomic_uint cc_environment = 2, cc_feature = 1, dev_tools_mode = 0, multi_gpu_mode = 1;
static atomic_uint delay_ms;
static atomic_int init_count;
static atomic_long inits, shutdowns, calls;
static atomic_int in_flight, max_in_flight;
static char dir[MAX_DIR];

/* ---- steering (tests only) ---- */

void nvml_double_reset(void) {
  for (int i = 0; i < FN_MAX; i++) atomic_store(&forced_rc[i], 0);
  atomic_store(&gpu_count, 1);
  atomic_store(&architecture, 9);
  atomic_store(&cc_environment, 2);
  atomic_store(&cc_feature, 1);
  atomic_store(&dev_tools_mode, 0);
  atomic_store(&multi_gpu_mode, 1);
  atomic_store(&delay_ms, 0);
  atomic_store(&init_count, 0);
  atomic_store(&inits, 0);
  atomic_store(&shutdowns, 0);
  atomic_store(&calls, 0);
  atomic_store(&in_flight, 0);
  atomic_store(&max_in_flight, 0);
  dir[0] = '\0';
}

/* Returns 0, or -1 for an unknown function name. */
int nvml_double_fail(const char *function, int rc) {
  for (int i = 0; i < FN_MAX; i++) {
    if (function != NULL && strcmp(function, FN_NAMES[i]) == 0) {
      atomic_store(&forced_rc[i], rc);
      return 0;
    }
  }
  return -1;
}

int nvml_double_set_dir(const char *path) {
  if (path == NULL || strlen(path) >= MAX_DIR) return -1;
  strcpy(dir, path);
  return 0;
}

void nvml_double_set_gpus(unsigned int count, unsigned int arch) {
  atomic_store(&gpu_count, count > MAX_GPUS ? MAX_GPUS : count);
  atomic_store(&architecture, arch);
}

void nvml_double_set_cc(unsigned int environment, unsigned int feature, unsigned int dev_tools,
                        unsigned int multi_gpu) {
  atomic_store(&cc_environment, environment);
  atomic_store(&cc_feature, feature);
  atomic_store(&dev_tools_mode, dev_tools);
  atomic_store(&multi_gpu_mode, multi_gpu);
}

void nvml_double_set_delay_ms(unsigned int ms) { atomic_store(&delay_ms, ms); }
int64_t nvml_double_calls(void) { return atomic_load(&calls); }
int64_t nvml_double_inits(void) { return atomic_load(&inits); }
int64_t nvml_double_shutdowns(void) { return atomic_load(&shutdowns); }
int32_t nvml_double_max_in_flight(void) { return atomic_load(&max_in_flight); }

/* ---- helpers ---- */

static void enter(void) {
  atomic_fetch_add(&calls, 1);
  int now = atomic_fetch_add(&in_flight, 1) + 1;
  int seen = atomic_load(&max_in_flight);
  while (now > seen && !atomic_compare_exchange_weak(&max_in_flight, &seen, now)) {
  }
  unsigned int ms = atomic_load(&delay_ms);
  if (ms > 0) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
}

static nvmlReturn_t leave(nvmlReturn_t rc) {
  atomic_fetch_sub(&in_flight, 1);
  return rc;
}

/* Common prologue: counts the call, applies a forced failure, checks initialisation. */
#define BEGIN(fn)                                                   \
  enter();                                                          \
  do {                                                              \
    int forced = atomic_load(&forced_rc[fn]);                       \
    if (forced != 0) return leave(forced);                          \
    if ((fn) != FN_INIT && atomic_load(&init_count) <= 0)           \
      return leave(NVML_ERROR_UNINITIALIZED);                       \
  } while (0)

static nvmlReturn_t device_index(nvmlDevice_t device, unsigned int *index) {
  if (device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  for (unsigned int i = 0; i < atomic_load(&gpu_count); i++) {
    if (device == &devices[i]) {
      *index = i;
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_INVALID_ARGUMENT;
}

/* Reads <dir>/gpu<index>.<ext> into buf; returns the byte count, or -1 (missing or too big). */
static long read_gpu_file(unsigned int index, const char *ext, unsigned char *buf, size_t cap) {
  char path[MAX_DIR + 64];
  if (dir[0] == '\0') return -1;
  snprintf(path, sizeof(path), "%s/gpu%u.%s", dir, index, ext);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, cap, f);
  int more = fgetc(f) != EOF;
  fclose(f);
  return more ? -1 : (long)n;
}

static nvmlReturn_t copy_string(const char *value, char *out, unsigned int length) {
  if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  strcpy(out, value);
  return NVML_SUCCESS;
}

/* ---- NVML API ---- */

nvmlReturn_t nvmlInit_v2(void) {
  BEGIN(FN_INIT);
  for (unsigned int i = 0; i < MAX_GPUS; i++) devices[i].index = i;
  atomic_fetch_add(&init_count, 1);
  atomic_fetch_add(&inits, 1);
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlShutdown(void) {
  BEGIN(FN_SHUTDOWN);
  atomic_fetch_sub(&init_count, 1);
  atomic_fetch_add(&shutdowns, 1);
  return leave(NVML_SUCCESS);
}

const char *nvmlErrorString(nvmlReturn_t rc) {
  switch (rc) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
    default: return "Unknown Error";
  }
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
  BEGIN(FN_COUNT);
  if (count == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *count = atomic_load(&gpu_count);
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  BEGIN(FN_HANDLE);
  if (device == NULL || index >= atomic_load(&gpu_count)) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *device = &devices[index];
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlSystemGetConfComputeState(nvmlConfComputeSystemState_t *state) {
  BEGIN(FN_STATE);
  if (state == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  state->environment = atomic_load(&cc_environment);
  state->ccFeature = atomic_load(&cc_feature);
  state->devToolsMode = atomic_load(&dev_tools_mode);
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlSystemGetConfComputeSettings(nvmlSystemConfComputeSettings_t *settings) {
  BEGIN(FN_SETTINGS);
  if (settings == NULL) return leave(NVML_ERROR_INVALID_ARGUMENT);
  if (settings->version != SETTINGS_V1) return leave(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
  settings->environment = atomic_load(&cc_environment);
  settings->ccFeature = atomic_load(&cc_feature);
  settings->devToolsMode = atomic_load(&dev_tools_mode);
  settings->multiGpuMode = atomic_load(&multi_gpu_mode);
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *arch) {
  BEGIN(FN_ARCH);
  unsigned int index;
  if (arch == NULL || device_index(device, &index) != NVML_SUCCESS) return leave(NVML_ERROR_INVALID_ARGUMENT);
  *arch = atomic_load(&architecture);
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
  BEGIN(FN_UUID);
  unsigned int index;
  if (device_index(device, &index) != NVML_SUCCESS) return leave(NVML_ERROR_INVALID_ARGUMENT);
  char value[64];
  snprintf(value, sizeof(value), "GPU-00000000-0000-4000-8000-%012u", index);
  return leave(copy_string(value, uuid, length));
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
  BEGIN(FN_DRIVER);
  return leave(copy_string("550.90.07", version, length));
}

nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length) {
  BEGIN(FN_VBIOS);
  unsigned int index;
  if (device_index(device, &index) != NVML_SUCCESS) return leave(NVML_ERROR_INVALID_ARGUMENT);
  return leave(copy_string("96.00.9F.00.01", version, length));
}

nvmlReturn_t nvmlDeviceGetConfComputeGpuAttestationReport(nvmlDevice_t device,
                                                          nvmlConfComputeGpuAttestationReport_t *report) {
  BEGIN(FN_REPORT);
  unsigned int index;
  if (report == NULL || device_index(device, &index) != NVML_SUCCESS) {
    return leave(NVML_ERROR_INVALID_ARGUMENT);
  }
  static unsigned char evidence[MAX_GPUS][ATTESTATION_REPORT_SIZE];
  long n = read_gpu_file(index, "evidence", evidence[index], sizeof(evidence[index]));
  if (n < 4 + NONCE_SIZE) return leave(NVML_ERROR_UNKNOWN);
  /* The GPU signs the caller's nonce; the double has evidence for one nonce only. */
  if (memcmp(report->nonce, evidence[index] + 4, NONCE_SIZE) != 0) return leave(NVML_ERROR_INVALID_ARGUMENT);
  report->isCecAttestationReportPresent = 0;
  report->attestationReportSize = (unsigned int)n;
  report->cecAttestationReportSize = 0;
  memcpy(report->attestationReport, evidence[index], (size_t)n);
  return leave(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetConfComputeGpuCertificate(nvmlDevice_t device, nvmlConfComputeGpuCertificate_t *cert) {
  BEGIN(FN_CERT);
  unsigned int index;
  if (cert == NULL || device_index(device, &index) != NVML_SUCCESS) return leave(NVML_ERROR_INVALID_ARGUMENT);
  long n = read_gpu_file(index, "chain", cert->attestationCertChain, sizeof(cert->attestationCertChain));
  if (n <= 0) return leave(NVML_ERROR_UNKNOWN);
  cert->attestationCertChainSize = (unsigned int)n;
  /* certChain is the GPU's device chain, not the one NRAS wants: a binding that reads it fails. */
  static const char other[] = "-----BEGIN CERTIFICATE-----\nnot the attestation chain\n-----END CERTIFICATE-----\n";
  memcpy(cert->certChain, other, sizeof(other) - 1);
  cert->certChainSize = (unsigned int)(sizeof(other) - 1);
  return leave(NVML_SUCCESS);
}
