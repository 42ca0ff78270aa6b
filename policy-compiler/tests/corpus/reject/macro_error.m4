# expect: unknown type or attribute `dom0_t_self`
# expect: in expansion of macro `self_rules`
# expect: note: macro `self_rules` defined here
define(`self_rules', `allow $1 $1_self:domain create;')
class xen
class domain
sid xen
class xen { readconsole writeconsole }
class domain { create pause }
type xen_t;
type dom0_t;
type domU_t;
self_rules(dom0_t)
role system_r;
role system_r types { xen_t dom0_t domU_t };
user system_u roles system_r;
sid xen system_u:system_r:xen_t
