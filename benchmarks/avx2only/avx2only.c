/* An AVX2-only CPU as every library in the process sees it (LD_PRELOAD; Linux x86-64 with cpuid faulting).
 *
 * Libraries choose their kernels from the CPUID instruction: torch, oneDNN, MKL, OpenVINO's oneDNN fork and its
 * MLAS. The environment can hold some of them to AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA,
 * MKL_ENABLE_INSTRUCTIONS) but not OpenVINO, whose MLAS and several jit kernels take AVX-512 wherever the CPU
 * has it. Here CPUID faults (arch_prctl ARCH_SET_CPUID, set before any other thread starts, inherited by every
 * thread): the SIGSEGV handler answers it with the AVX-512, AMX and AVX-VNNI feature bits cleared, so every
 * library dispatches as on an AVX2 CPU (avx avx2 fma f16c). Other faults go to the handler the program
 * installed, or end it as they would have. Benchmarks only: the instructions still run on this CPU's cores.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction program_segv;  /* the SIGSEGV handler the program asked for */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void cpuid_raw(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void mask_to_avx2(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 23));  /* avx-vnni, avx512_bf16, avx-ifma */
    } else if (leaf == 0xD && sub == 0) {
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));  /* opmask, zmm state, tile state */
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *regs = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    if (ip[0] == 0x0F && ip[1] == 0xA2) {
        uint32_t r[4];
        uint32_t leaf = (uint32_t)regs[REG_RAX], sub = (uint32_t)regs[REG_RCX];
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        cpuid_raw(leaf, sub, r);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        mask_to_avx2(leaf, sub, r);
        regs[REG_RAX] = r[0]; regs[REG_RBX] = r[1]; regs[REG_RCX] = r[2]; regs[REG_RDX] = r[3];
        regs[REG_RIP] += 2;
        return;
    }
    if (program_segv.sa_flags & SA_SIGINFO && program_segv.sa_sigaction) {
        program_segv.sa_sigaction(sig, info, context);
    } else if (program_segv.sa_handler != SIG_DFL && program_segv.sa_handler != SIG_IGN) {
        program_segv.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);  /* returning re-runs the faulting instruction, which now ends the process */
    }
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig != SIGSEGV) return real_sigaction(sig, act, old);
    if (old) *old = program_segv;
    if (act) program_segv = *act;
    return 0;
}

__attribute__((constructor)) static void start(void) {
    real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_segv;
    ours.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&ours.sa_mask);
    if (real_sigaction(SIGSEGV, &ours, NULL) != 0 || syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "avx2only: this CPU or kernel has no cpuid faulting; nothing is masked\n");
        exit(70);
    }
}
