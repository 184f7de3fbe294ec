// LD_PRELOAD library that makes an AVX-512 machine look like an AVX2 one to the process it
// is loaded into, so that kiln and ONNX Runtime can both be timed on their AVX2 kernels on
// the same core (ORT has no switch for its ISA; oneDNN's ONEDNN_MAX_CPU_ISA caps only oneDNN).
//
//   LD_PRELOAD=build/release/bench/cpuid_mask/libkiln_avx2_only.so node bench/ort_bench.js ...
//
// How: Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID, CPU flag `cpuid_fault`) turns every
// CPUID instruction of the thread into a SIGSEGV; the handler runs the real CPUID with
// faulting briefly off, clears the bits of the features that need AVX-512 (ZMM) or AMX (tile)
// register state — the features kiln's own table (src/runtime/cpu_features.h) marks with
// ZMM state, and AMX — and resumes after the instruction. The setting is inherited by threads
// and forks and dropped at execve. What ran CPUID before this library's constructor keeps its
// answer: ld.so's string-function choice (glibc's memcpy may still use EVEX forms).
// Programs that set SIGSEGV themselves (Node resets every disposition at start, V8 adds its
// WebAssembly trap handler) have their handler recorded by this library's sigaction/signal
// and called for every SIGSEGV that is not a CPUID, so the CPUID handler stays in place.
// If the CPU has AVX-512 and the kernel cannot fault CPUID, the process stops with a message
// rather than being timed on the wrong ISA.
#include "cpu_features.h"

#include <asm/prctl.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <string_view>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

namespace {

constexpr unsigned kZmmState = 0xe0;    // XCR0 opmask, ZMM_Hi256, Hi16_ZMM
constexpr unsigned kCpuidInsn = 0xa20f; // 0F A2, little-endian

bool allowCpuid(bool allowed) {
  return syscall(SYS_arch_prctl, ARCH_SET_CPUID, allowed ? 1 : 0) == 0;
}

// Clears, in one CPUID answer, the features an AVX2-only x86-64-v3 CPU would not report.
void maskAnswer(unsigned leaf, unsigned subleaf, unsigned r[4]) {
  using kiln::cpu::kFeatures;
  for (const auto &f : kFeatures)
    if ((f.osState & kZmmState) && f.leaf == leaf && f.subleaf == subleaf)
      r[static_cast<int>(f.reg)] &= ~(1u << f.bit);
  if (leaf == 7 && subleaf == 0)
    r[3] &= ~((1u << 22) | (1u << 24) | (1u << 25));  // AMX-BF16, AMX-TILE, AMX-INT8
  if (leaf == 7 && subleaf == 1) r[3] &= ~(1u << 19); // AVX10
}

using SigactionFn = int (*)(int, const struct sigaction *, struct sigaction *);

SigactionFn realSigaction() {
  static const auto fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  return fn;
}

bool installed = false;
struct sigaction programAction; // what the program asked for SIGSEGV (SIG_DFL at start)

void onSegv(int sig, siginfo_t *info, void *context) {
  auto *uc = static_cast<ucontext_t *>(context);
  greg_t *regs = uc->uc_mcontext.gregs;
  // A faulted CPUID arrives as a kernel-raised SIGSEGV at the instruction itself.
  if (info->si_code == SI_KERNEL &&
      *reinterpret_cast<const unsigned short *>(regs[REG_RIP]) == kCpuidInsn) {
    unsigned leaf = static_cast<unsigned>(regs[REG_RAX]);
    unsigned subleaf = static_cast<unsigned>(regs[REG_RCX]);
    unsigned r[4];
    allowCpuid(true);
    __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
    allowCpuid(false);
    maskAnswer(leaf, subleaf, r);
    regs[REG_RAX] = r[0];
    regs[REG_RBX] = r[1];
    regs[REG_RCX] = r[2];
    regs[REG_RDX] = r[3];
    regs[REG_RIP] += 2;
    return;
  }
  // Any other SIGSEGV is the program's.
  if (programAction.sa_flags & SA_SIGINFO) {
    programAction.sa_sigaction(sig, info, context);
  } else if (programAction.sa_handler != SIG_DFL && programAction.sa_handler != SIG_IGN) {
    programAction.sa_handler(sig);
  } else {
    struct sigaction fallback = {};
    fallback.sa_handler = SIG_DFL;
    realSigaction()(SIGSEGV, &fallback, nullptr); // the faulting instruction re-runs and kills
  }
}

__attribute__((constructor)) void hideAvx512() {
  bool hasAvx512 = false;
  for (const auto &f : kiln::cpu::kFeatures)
    if (std::string_view(f.name) == "avx512f") hasAvx512 = kiln::cpu::cpuHas(f);
  if (!hasAvx512) return; // nothing to hide
  struct sigaction action = {};
  action.sa_sigaction = onSegv;
  action.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  if (!realSigaction() || realSigaction()(SIGSEGV, &action, &programAction) != 0 ||
      !allowCpuid(false)) {
    std::fprintf(stderr, "libkiln_avx2_only: this kernel or CPU cannot fault CPUID (no "
                         "`cpuid_fault` in /proc/cpuinfo); refusing to run with AVX-512 visible\n");
    std::_Exit(97);
  }
  installed = true;
}

} // namespace

// The program's view of SIGSEGV: recorded and reported, while the CPUID handler stays.
extern "C" __attribute__((visibility("default"))) int
sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (sig != SIGSEGV || !installed) return realSigaction()(sig, act, old);
  if (old) *old = programAction;
  if (act) programAction = *act;
  return 0;
}

extern "C" __attribute__((visibility("default"))) sighandler_t signal(int sig,
                                                                      sighandler_t handler) {
  struct sigaction act = {}, old = {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}
