/*
 * sepol-oracle: the reference decision engine for Warden's differential tests.
 *
 * Loads a binary policy with Debian's libsepol (the library checkpolicy and
 * setools use) and answers the same queries, in the same line format, as
 * Warden's `flask` tool, so that the two can be compared line by line.
 *
 * The functions below are called from Rust (src/lib.rs) under a global lock:
 * libsepol's services layer keeps its policy in process-global state.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sepol/debug.h>
#include <sepol/policydb/conditional.h>
#include <sepol/policydb/hashtab.h>
#include <sepol/policydb/policydb.h>
#include <sepol/policydb/services.h>
#include <sepol/policydb/sidtab.h>

static policydb_t pdb;
static sidtab_t sidtab;
static int loaded;

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static void unload(void)
{
	if (loaded) {
		sepol_sidtab_destroy(&sidtab);
		policydb_destroy(&pdb);
		loaded = 0;
	}
}

/* Load POLICY, then set the listed booleans and re-evaluate conditionals. */
int oracle_load(const char *path, const char *const *bool_names,
		const int *bool_vals, int nbools, char *err, size_t errlen)
{
	struct policy_file pf;
	FILE *fp;
	int i;

	unload();
	sepol_debug(0);
	fp = fopen(path, "rb");
	if (!fp) {
		set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	policy_file_init(&pf);
	pf.type = PF_USE_STDIO;
	pf.fp = fp;
	if (policydb_init(&pdb)) {
		fclose(fp);
		set_err(err, errlen, "policydb_init failed");
		return -1;
	}
	if (policydb_read(&pdb, &pf, 0)) {
		fclose(fp);
		policydb_destroy(&pdb);
		set_err(err, errlen, "libsepol cannot read %s", path);
		return -1;
	}
	fclose(fp);
	if (sepol_sidtab_init(&sidtab)) {
		policydb_destroy(&pdb);
		set_err(err, errlen, "sidtab init failed");
		return -1;
	}
	if (policydb_load_isids(&pdb, &sidtab)) {
		sepol_sidtab_destroy(&sidtab);
		policydb_destroy(&pdb);
		set_err(err, errlen, "cannot load initial SIDs");
		return -1;
	}
	loaded = 1;
	for (i = 0; i < nbools; i++) {
		cond_bool_datum_t *b =
		    hashtab_search(pdb.p_bools.table, (hashtab_key_t)bool_names[i]);
		if (!b) {
			set_err(err, errlen, "unknown boolean %s", bool_names[i]);
			unload();
			return -1;
		}
		b->state = bool_vals[i] ? 1 : 0;
	}
	if (evaluate_conds(&pdb)) {
		set_err(err, errlen, "evaluate_conds failed");
		unload();
		return -1;
	}
	sepol_set_policydb(&pdb);
	sepol_set_sidtab(&sidtab);
	return 0;
}

static int to_sid(const char *ctx, sepol_security_id_t *sid, char *err,
		  size_t errlen)
{
	if (sepol_context_to_sid(ctx, strlen(ctx) + 1, sid)) {
		set_err(err, errlen, "invalid context %s", ctx);
		return -1;
	}
	return 0;
}

static int to_class(const char *name, sepol_security_class_t *cls, char *err,
		    size_t errlen)
{
	if (sepol_string_to_security_class(name, cls)) {
		set_err(err, errlen, "unknown class %s", name);
		return -1;
	}
	return 0;
}

int oracle_compute_av(const char *scon, const char *tcon, const char *cls,
		      unsigned *allowed, unsigned *auditallow,
		      unsigned *auditdeny, char *err, size_t errlen)
{
	sepol_security_id_t ssid, tsid;
	sepol_security_class_t tclass;
	struct sepol_av_decision avd;

	if (!loaded) {
		set_err(err, errlen, "no policy loaded");
		return -1;
	}
	if (to_sid(scon, &ssid, err, errlen) || to_sid(tcon, &tsid, err, errlen) ||
	    to_class(cls, &tclass, err, errlen))
		return -1;
	memset(&avd, 0, sizeof(avd));
	if (sepol_compute_av(ssid, tsid, tclass, 0xffffffffu, &avd)) {
		set_err(err, errlen, "sepol_compute_av failed");
		return -1;
	}
	*allowed = avd.allowed;
	*auditallow = avd.auditallow;
	*auditdeny = avd.auditdeny;
	return 0;
}

/* kind: 0 = create (type_transition), 1 = member, 2 = relabel (change). */
int oracle_compute_sid(int kind, const char *scon, const char *tcon,
		       const char *cls, char *out, size_t outlen, char *err,
		       size_t errlen)
{
	sepol_security_id_t ssid, tsid, nsid;
	sepol_security_class_t tclass;
	char *ctx = NULL;
	size_t len = 0;
	int rc;

	if (!loaded) {
		set_err(err, errlen, "no policy loaded");
		return -1;
	}
	if (to_sid(scon, &ssid, err, errlen) || to_sid(tcon, &tsid, err, errlen) ||
	    to_class(cls, &tclass, err, errlen))
		return -1;
	switch (kind) {
	case 0:
		rc = sepol_transition_sid(ssid, tsid, tclass, &nsid);
		break;
	case 1:
		rc = sepol_member_sid(ssid, tsid, tclass, &nsid);
		break;
	default:
		rc = sepol_change_sid(ssid, tsid, tclass, &nsid);
		break;
	}
	if (rc) {
		set_err(err, errlen, "cannot compute a new context");
		return -1;
	}
	if (sepol_sid_to_context(nsid, &ctx, &len)) {
		set_err(err, errlen, "cannot convert SID %u to a context", nsid);
		return -1;
	}
	snprintf(out, outlen, "%.*s", (int)len, ctx);
	free(ctx);
	return 0;
}

/* ---- info: lists the policy's symbols, one per line, into a callback ---- */

typedef void (*line_cb)(void *arg, const char *line);

struct walk {
	line_cb cb;
	void *arg;
	char buf[8192];
};

static int perm_walk(hashtab_key_t key, hashtab_datum_t datum, void *p)
{
	/* Collects "name=value" pairs; the caller sorts nothing, Rust does. */
	struct walk *w = p;
	perm_datum_t *perm = datum;
	size_t used = strlen(w->buf);
	snprintf(w->buf + used, sizeof(w->buf) - used, " %s=%u", (char *)key,
		 perm->s.value);
	return 0;
}

void oracle_info(line_cb cb, void *arg)
{
	struct walk w;
	unsigned i;

	w.cb = cb;
	w.arg = arg;
	if (!loaded)
		return;
	snprintf(w.buf, sizeof(w.buf), "policyvers %u mls %d handle_unknown %u",
		 pdb.policyvers, pdb.mls, pdb.handle_unknown);
	cb(arg, w.buf);
	for (i = 0; i < pdb.p_types.nprim; i++) {
		type_datum_t *t = pdb.type_val_to_struct[i];
		if (!t)
			continue;
		snprintf(w.buf, sizeof(w.buf), "%s %s",
			 t->flavor == TYPE_ATTRIB ? "attribute" : "type",
			 pdb.p_type_val_to_name[i]);
		cb(arg, w.buf);
	}
	for (i = 0; i < pdb.p_roles.nprim; i++) {
		snprintf(w.buf, sizeof(w.buf), "role %s", pdb.p_role_val_to_name[i]);
		cb(arg, w.buf);
	}
	for (i = 0; i < pdb.p_users.nprim; i++) {
		snprintf(w.buf, sizeof(w.buf), "user %s", pdb.p_user_val_to_name[i]);
		cb(arg, w.buf);
	}
	for (i = 0; i < pdb.p_bools.nprim; i++) {
		snprintf(w.buf, sizeof(w.buf), "bool %s %d",
			 pdb.p_bool_val_to_name[i],
			 pdb.bool_val_to_struct[i]->state);
		cb(arg, w.buf);
	}
	for (i = 0; i < pdb.p_classes.nprim; i++) {
		class_datum_t *c = pdb.class_val_to_struct[i];
		snprintf(w.buf, sizeof(w.buf), "class %s %u",
			 pdb.p_class_val_to_name[i], i + 1);
		if (c->comdatum)
			hashtab_map(c->comdatum->permissions.table, perm_walk, &w);
		hashtab_map(c->permissions.table, perm_walk, &w);
		cb(arg, w.buf);
	}
}

/* ---- benchmark entry points (used by xsm/benches) ---- */

/* policydb_read of an in-memory image into a fresh policydb, then destroy. */
int oracle_read_mem(const void *data, size_t len)
{
	policydb_t p;
	struct policy_file pf;
	int rc;

	sepol_debug(0);
	policy_file_init(&pf);
	pf.type = PF_USE_MEMORY;
	pf.data = (char *)data;
	pf.len = len;
	if (policydb_init(&p))
		return -1;
	rc = policydb_read(&p, &pf, 0);
	policydb_destroy(&p);
	return rc;
}

/* SID of a context in the loaded policy. */
int oracle_context_sid(const char *ctx, unsigned *sid)
{
	sepol_security_id_t s;

	if (!loaded || sepol_context_to_sid(ctx, strlen(ctx) + 1, &s))
		return -1;
	*sid = s;
	return 0;
}

/* sepol_compute_av on SIDs (no string parsing): allowed vector. */
int oracle_av_sid(unsigned ssid, unsigned tsid, unsigned short cls,
		  unsigned *allowed)
{
	struct sepol_av_decision avd;

	if (!loaded || sepol_compute_av(ssid, tsid, cls, 0xffffffffu, &avd))
		return -1;
	*allowed = avd.allowed;
	return 0;
}

/* Class value of a class name in the loaded policy. */
int oracle_class(const char *name, unsigned short *cls)
{
	sepol_security_class_t c;

	if (!loaded || sepol_string_to_security_class(name, &c))
		return -1;
	*cls = c;
	return 0;
}

/*
 * Every decision the differential tests compare, on SIDs (each context
 * parsed once by the caller, not four times per query): the access vectors
 * (av[0] allowed, av[1] auditallow, av[2] auditdeny) and the SIDs of the
 * create (type_transition), member and change (relabel) computations.
 * rc[0] is the access vector's status, rc[1..3] the three computations'.
 */
void oracle_decide(unsigned ssid, unsigned tsid, unsigned short cls,
		   unsigned av[3], unsigned sids[3], int rc[4])
{
	struct sepol_av_decision avd;
	sepol_security_id_t nsid;

	memset(&avd, 0, sizeof(avd));
	rc[0] = !loaded || sepol_compute_av(ssid, tsid, cls, 0xffffffffu, &avd);
	av[0] = avd.allowed;
	av[1] = avd.auditallow;
	av[2] = avd.auditdeny;
	nsid = 0;
	rc[1] = !loaded || sepol_transition_sid(ssid, tsid, cls, &nsid);
	sids[0] = nsid;
	nsid = 0;
	rc[2] = !loaded || sepol_member_sid(ssid, tsid, cls, &nsid);
	sids[1] = nsid;
	nsid = 0;
	rc[3] = !loaded || sepol_change_sid(ssid, tsid, cls, &nsid);
	sids[2] = nsid;
}

/* The context of a SID, into OUT (NUL-terminated). */
int oracle_sid_context(unsigned sid, char *out, size_t outlen)
{
	char *ctx = NULL;
	size_t len = 0;

	if (!loaded || sepol_sid_to_context(sid, &ctx, &len))
		return -1;
	snprintf(out, outlen, "%.*s", (int)len, ctx);
	free(ctx);
	return 0;
}

/* ---- ocontexts: one line per Xen object context, in a canonical text form ---- */

static void level_str(char *buf, size_t len, const mls_level_t *l)
{
	ebitmap_node_t *n;
	unsigned i;
	size_t used;
	int first = 1;

	snprintf(buf, len, "%s", pdb.p_sens_val_to_name[l->sens - 1]);
	ebitmap_for_each_positive_bit(&l->cat, n, i) {
		used = strlen(buf);
		snprintf(buf + used, len - used, "%s%s", first ? ":" : ",",
			 pdb.p_cat_val_to_name[i]);
		first = 0;
	}
}

static void context_str(char *buf, size_t len, const context_struct_t *c)
{
	char lo[2048], hi[2048];
	snprintf(buf, len, "%s:%s:%s", pdb.p_user_val_to_name[c->user - 1],
		 pdb.p_role_val_to_name[c->role - 1],
		 pdb.p_type_val_to_name[c->type - 1]);
	if (pdb.mls) {
		size_t used = strlen(buf);
		level_str(lo, sizeof(lo), &c->range.level[0]);
		level_str(hi, sizeof(hi), &c->range.level[1]);
		snprintf(buf + used, len - used, ":%s-%s", lo, hi);
	}
}

/* Lines: "isid N CTX", "pirq N CTX", "ioport LO-HI CTX", "iomem LO-HI CTX",
 * "pcidevice N CTX", "devicetree PATH CTX" (numbers in hex). */
void oracle_ocontexts(line_cb cb, void *arg)
{
	static const char *const kinds[] = { "isid", "pirq", "ioport", "iomem",
					     "pcidevice", "devicetree" };
	char ctx[4608], line[8192];
	ocontext_t *c;
	unsigned i;

	if (!loaded)
		return;
	for (i = 0; i < 6; i++) {
		for (c = pdb.ocontexts[i]; c; c = c->next) {
			context_str(ctx, sizeof(ctx), &c->context[0]);
			switch (i) {
			case OCON_XEN_ISID:
				snprintf(line, sizeof(line), "%s %x %s", kinds[i], c->sid[0], ctx);
				break;
			case OCON_XEN_PIRQ:
				snprintf(line, sizeof(line), "%s %x %s", kinds[i], c->u.pirq, ctx);
				break;
			case OCON_XEN_IOPORT:
				snprintf(line, sizeof(line), "%s %x-%x %s", kinds[i],
					 c->u.ioport.low_ioport, c->u.ioport.high_ioport, ctx);
				break;
			case OCON_XEN_IOMEM:
				snprintf(line, sizeof(line), "%s %llx-%llx %s", kinds[i],
					 (unsigned long long)c->u.iomem.low_iomem,
					 (unsigned long long)c->u.iomem.high_iomem, ctx);
				break;
			case OCON_XEN_PCIDEVICE:
				snprintf(line, sizeof(line), "%s %x %s", kinds[i], c->u.device, ctx);
				break;
			default:
				snprintf(line, sizeof(line), "%s %s %s", kinds[i], c->u.name, ctx);
				break;
			}
			cb(arg, line);
		}
	}
}
