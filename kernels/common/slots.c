/*
 * slots.c: the table of named operator tensors (see slots.h).
 */
#include "slots.h"

#include <stddef.h>
#include <string.h>

#define P(f) offsetof(attn_params, f)

/* Order matters: each gradient names its input by index. */
static const attn_slot slots[] = {
    /*  0 */ {"q", SLOT_INPUT, 0, P(q), P(q_st), -1},
    /*  1 */ {"k", SLOT_INPUT, 0, P(k), P(k_st), -1},
    /*  2 */ {"v", SLOT_INPUT, 0, P(v), P(v_st), -1},
    /*  3 */ {"z", SLOT_INPUT, 1, P(z), 0, -1},
    /*  4 */ {"w_dt", SLOT_INPUT, 1, P(w_dt), 0, -1},
    /*  5 */ {"b_dt", SLOT_INPUT, 1, P(b_dt), 0, -1},
    /*  6 */ {"a", SLOT_INPUT, 1, P(a), 0, -1},
    /*  7 */ {"g", SLOT_INPUT, 1, P(g), 0, -1},
    /*  8 */ {"w_ck", SLOT_INPUT, 1, P(w_ck), 0, -1},
    /*  9 */ {"w_cv", SLOT_INPUT, 1, P(w_cv), 0, -1},
    /* 10 */ {"p_k", SLOT_INPUT, 1, P(p_k), 0, -1},
    /* 11 */ {"p_v", SLOT_INPUT, 1, P(p_v), 0, -1},
    /* 12 */ {"do", SLOT_INPUT, 0, P(dout), P(do_st), -1},
    /* 13 */ {"o", SLOT_OUTPUT, 0, P(o), P(o_st), -1},
    /* 14 */ {"lse", SLOT_OUTPUT, 1, P(lse), 0, -1},
    /* 15 */ {"z_out", SLOT_OUTPUT, 1, P(z_out), 0, -1},
    /* 16 */ {"dq", SLOT_GRAD, 0, P(dq), P(dq_st), 0},
    /* 17 */ {"dk", SLOT_GRAD, 0, P(dk), P(dk_st), 1},
    /* 18 */ {"dv", SLOT_GRAD, 0, P(dv), P(dv_st), 2},
    /* 19 */ {"dz", SLOT_GRAD, 1, P(dz), 0, 3},
    /* 20 */ {"dw_dt", SLOT_GRAD, 1, P(dw_dt), 0, 4},
    /* 21 */ {"db_dt", SLOT_GRAD, 1, P(db_dt), 0, 5},
    /* 22 */ {"da", SLOT_GRAD, 1, P(da), 0, 6},
    /* 23 */ {"dg", SLOT_GRAD, 1, P(dg), 0, 7},
    /* 24 */ {"dw_ck", SLOT_GRAD, 1, P(dw_ck), 0, 8},
    /* 25 */ {"dw_cv", SLOT_GRAD, 1, P(dw_cv), 0, 9},
    /* 26 */ {"dp_k", SLOT_GRAD, 1, P(dp_k), 0, 10},
    /* 27 */ {"dp_v", SLOT_GRAD, 1, P(dp_v), 0, 11},
};
#define NSLOTS ((int)(sizeof slots / sizeof *slots))

const attn_slot *attn_slot_table(int *n) {
    *n = NSLOTS;
    return slots;
}

const attn_slot *attn_slot_find(const char *name) {
    for (int i = 0; i < NSLOTS; i++)
        if (strcmp(slots[i].name, name) == 0) return &slots[i];
    return NULL;
}

/* Which inputs a variant uses, by input name. */
static int input_used(const char *name, attn_variant v, const attn_params *p, int dma_wdt,
                      int with_bias) {
    if (!strcmp(name, "q") || !strcmp(name, "k") || !strcmp(name, "v") || !strcmp(name, "do"))
        return 1;
    if (v == ATTN_DMA) {
        if (!strcmp(name, "z")) return !dma_wdt;
        if (!strcmp(name, "w_dt") || !strcmp(name, "a")) return dma_wdt;
        if (!strcmp(name, "b_dt")) return dma_wdt && with_bias;
        return 0;
    }
    if (v == ATTN_NSA) {
        if (!strcmp(name, "g")) return 1;
        if (!strcmp(name, "w_ck") || !strcmp(name, "w_cv") || !strcmp(name, "p_k") ||
            !strcmp(name, "p_v"))
            return p->nsa_cmp == NSA_CMP_LINEAR;
    }
    return 0;
}

int attn_slot_used(const attn_slot *s, attn_variant v, const attn_params *p, int dma_wdt, int with_bias) {
    if (s->kind == SLOT_INPUT) return input_used(s->name, v, p, dma_wdt, with_bias);
    if (s->kind == SLOT_GRAD) {
        /* dz is an output of dma in both modes */
        if (!strcmp(s->name, "dz")) return v == ATTN_DMA;
        return input_used(slots[s->grad_of].name, v, p, dma_wdt, with_bias);
    }
    if (!strcmp(s->name, "z_out")) return v == ATTN_DMA;
    return 1; /* o, lse */
}

int attn_slot_shape(const attn_slot *s, const attn_params *p, attn_variant v, int64_t dims[4]) {
    const char *n = s->name;
    if (s->kind == SLOT_GRAD) n = slots[s->grad_of].name;
    if (!strcmp(n, "q") || !strcmp(n, "o") || !strcmp(n, "do")) {
        dims[0] = p->B, dims[1] = p->Nq, dims[2] = p->Hq, dims[3] = p->D;
        return 4;
    }
    if (!strcmp(n, "k") || !strcmp(n, "v")) {
        dims[0] = p->B, dims[1] = p->Nk, dims[2] = p->Hkv, dims[3] = p->D;
        return 4;
    }
    if (!strcmp(n, "z") || !strcmp(n, "z_out")) {
        dims[0] = p->B, dims[1] = p->Hkv, dims[2] = p->Nk;
        return 3;
    }
    if (!strcmp(n, "w_dt")) {
        dims[0] = (int64_t)p->Hkv * p->D, dims[1] = p->Hkv;
        return 2;
    }
    if (!strcmp(n, "b_dt") || !strcmp(n, "a")) {
        dims[0] = p->Hkv;
        return 1;
    }
    if (!strcmp(n, "g")) {
        dims[0] = p->B, dims[1] = p->Nq, dims[2] = p->Hq, dims[3] = 3;
        return 4;
    }
    if (!strcmp(n, "w_ck") || !strcmp(n, "w_cv")) {
        dims[0] = p->Hkv, dims[1] = (int64_t)p->nsa_l * p->D, dims[2] = p->D;
        return 3;
    }
    if (!strcmp(n, "p_k") || !strcmp(n, "p_v")) {
        dims[0] = p->Hkv, dims[1] = p->nsa_l, dims[2] = p->D;
        return 3;
    }
    if (!strcmp(n, "lse")) {
        int k = 0;
        if (v == ATTN_NSA) dims[k++] = 3;
        dims[k++] = p->B, dims[k++] = p->Hq, dims[k++] = p->Nq;
        return k;
    }
    return 0;
}

int64_t attn_slot_numel(const attn_slot *s, const attn_params *p, attn_variant v) {
    int64_t dims[4];
    int nd = attn_slot_shape(s, p, v, dims);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    return n;
}

attn_dtype attn_slot_dtype(const attn_slot *s, const attn_params *p) {
    if (!s->aux) return p->dtype;
    return p->dtype == ATTN_DTYPE_F64 ? ATTN_DTYPE_F64 : ATTN_DTYPE_F32;
}
