# Macro source compared against `m4 | checkpolicy`: define, $1..$9, $#, $*,
# $@, shift, ifdef, ifelse, dnl, divert, include, undefine, nested quotes.
# flags: -D with_guest_pause -D nguests=3
divert(-1)
define(`declare_domain', `
type $1, domain_type`'ifelse(`$#', `1', `', `, shift($@)');
type $1_self, domain_self_type;
type_transition $1 $1:domain $1_self;
')
define(`create_domain', `allow $1 $2:domain { create pause unpause destroy };
allow $1 $2_self:domain getdomaininfo;')
define(`list_all', `$*')
define(`quote_all', `$@')
define(`count_args', `$#')
define(`chain', `ifelse(`$1', `', `', `allow $1 xen_t:xen readconsole;
chain(shift($@))')')
define(`temporary', `unused')
undefine(`temporary')
divert`'dnl
include(`../include/classes.spt')
attribute domain_type;
attribute domain_self_type;
attribute guest_type;
type xen_t;
declare_domain(dom0_t)
declare_domain(domU_t, guest_type)
attribute domain_type_extra;
declare_domain(stub_t, guest_type, domain_type_extra)
create_domain(dom0_t, domU_t)
create_domain(dom0_t, stub_t)
chain(dom0_t, domU_t, stub_t)
ifdef(`with_guest_pause', `allow guest_type self:domain pause;', `dontaudit guest_type self:domain pause;')
ifdef(`temporary', `type should_not_exist_t;')
ifelse(nguests, `3', `allow dom0_t domain_type:event { bind send };
typeattribute xen_t list_all(domain_type_extra, guest_type);', `type wrong_t;')
# comments keep `quotes' and macro names like create_domain unexpanded
allow domain_type xen_t:xen physinfo; dnl trailing text is dropped
role system_r;
role system_r types { domain_type domain_self_type xen_t };
user system_u roles system_r;
sid xen system_u:system_r:xen_t
sid dom0 system_u:system_r:dom0_t
