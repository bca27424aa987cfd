/*
 * test_attn_cmd.c: `dmabench attn` computes what the operator computes. Writes
 * inputs with attn-inputs, runs attn through its command entry point, and compares
 * every output tensor with a direct run of the reference on the same inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn_case.h"
#include "check.h"
#include "commands.h"
#include "registry.h"
#include "safetensors.h"

static int run(char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    return strcmp(argv[1], "attn") == 0 ? cmd_attn(argc, argv) : cmd_attn_inputs(argc, argv);
}

/* Reads the inputs back, runs the reference directly, compares with out.st. */
static void check_variant(const char *dir, attn_variant v, char **settings, int nset, int wdt) {
    char in[512], out[512], name[128];
    snprintf(in, sizeof in, "%s/in_%s%d.st", dir, attn_variant_name(v), wdt);
    snprintf(out, sizeof out, "%s/out_%s%d.st", dir, attn_variant_name(v), wdt);
    char *a1[32] = {"dmabench", "attn-inputs", "--variant", (char *)attn_variant_name(v), "--shape", "2,7,11,4,2,6",
                    "--backward", "--seed", "5", "--out", in};
    int n1 = 11;
    if (wdt) a1[n1++] = "--wdt", a1[n1++] = "--bias";
    for (int i = 0; i < nset; i++) a1[n1++] = settings[i];
    a1[n1] = NULL;
    char *a2[32] = {"dmabench", "attn", "--variant", (char *)attn_variant_name(v), "--backward", "--in", in, "--out", out};
    int n2 = 9;
    for (int i = 0; i < nset; i++) a2[n2++] = settings[i];
    a2[n2] = NULL;
    const char *tag = wdt ? "_wdt" : "";
    snprintf(name, sizeof name, "attn_cmd/%s%s/runs", attn_variant_name(v), tag);
    int rc1 = run(a1), rc2 = run(a2);
    CHECK(rc1 == 0 && rc2 == 0, name, "attn-inputs rc %d, attn rc %d", rc1, rc2);
    if (rc1 || rc2) return;

    /* the same problem through the library: the inputs as written, f32 */
    st_file fi, fo;
    st_file_init(&fi);
    st_file_init(&fo);
    char err[256];
    st_read(in, &fi, err, sizeof err);
    st_read(out, &fo, err, sizeof err);
    attn_params sh;
    attn_params_init(&sh, 2, 7, 11, 4, 2, 6, ATTN_DTYPE_F32, 1);
    sh.w = 3;
    sh.nsa_l = 4, sh.nsa_d = 2, sh.nsa_ls = 4, sh.nsa_n = 2;
    attn_case c;
    attn_case_alloc(&c, v, &sh, wdt, wdt, 1);
    int ns;
    const attn_slot *tab = attn_slot_table(&ns);
    for (int i = 0; i < ns; i++)
        if (tab[i].kind == SLOT_INPUT && c.buf[i]) {
            const st_tensor *t = st_file_find(&fi, tab[i].name);
            if (t) memcpy(c.buf[i], t->data, t->nbytes);
        }
    const attn_op *op = attn_registry_find(v, ATTN_BACKEND_REF);
    op->forward(&c.p);
    op->backward(&c.p);
    int nchecked = 0, bad = 0;
    char worst[64] = "";
    for (int i = 0; i < ns; i++) {
        if (tab[i].kind == SLOT_INPUT || !c.buf[i]) continue;
        const char *nm = strcmp(tab[i].name, "z_out") == 0 ? "z" : tab[i].name;
        if (!strcmp(nm, "z") && !wdt) continue;
        const st_tensor *t = st_file_find(&fo, nm);
        if (!t || t->nbytes != (size_t)attn_slot_numel(&tab[i], &c.p, v) * 4 || memcmp(t->data, c.buf[i], t->nbytes)) {
            bad++;
            snprintf(worst, sizeof worst, "%s", nm);
        }
        nchecked++;
    }
    snprintf(name, sizeof name, "attn_cmd/%s%s/outputs_match", attn_variant_name(v), tag);
    CHECK(bad == 0 && nchecked >= 5, name, "%d of %d tensors differ (e.g. %s)", bad, nchecked, worst);
    attn_case_free(&c);
    st_file_free(&fi);
    st_file_free(&fo);
}

int main(void) {
    char dir[] = "/tmp/dmabench-attn-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char *common[] = {"--causal", "--w", "3"};
    char *nsa[] = {"--causal", "--w", "3", "--nsa-l", "4", "--nsa-d", "2", "--nsa-ls", "4", "--nsa-n", "2"};
    check_variant(dir, ATTN_MHA, common, 1, 0);
    check_variant(dir, ATTN_SWA, common, 3, 0);
    check_variant(dir, ATTN_DMA, common, 3, 0);
    check_variant(dir, ATTN_DMA, common, 3, 1);
    check_variant(dir, ATTN_NSA, nsa, 11, 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return check_exit();
}
