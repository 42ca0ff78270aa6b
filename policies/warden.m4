# Warden's default FLASK policy: the one entry point.
#
#   policy-compiler -t xen -c 30 -o xenpolicy-warden policies/warden.m4
#
# (equivalently, for checkpolicy: m4 -I policies policies/warden.m4 > policy.conf;
#  checkpolicy -t xen -c 30 policy.conf -o xenpolicy-warden)
#
# MLS build: policy-compiler -t xen -c 30 -M -D enable_mls -o xenpolicy-warden-mls policies/warden.m4
#
# Sections must come in the order the policy language requires; every file
# named here is read once, in this order. include() is relative to this file.
include(`policy/support.m4')dnl
include(`flask/security_classes')dnl
include(`flask/initial_sids')dnl
include(`flask/access_vectors')dnl
include(`policy/mls')dnl
include(`policy/booleans')dnl
include(`modules/xen.if')dnl
include(`modules/xen.te')dnl
include(`modules/dom0.te')dnl
include(`modules/domU.te')dnl
include(`modules/isolated_domU.te')dnl
include(`modules/prot_domU.te')dnl
include(`modules/device_model.te')dnl
include(`modules/xenstore.te')dnl
include(`modules/nic_dev.te')dnl
include(`modules/livepatch.te')dnl
include(`policy/roles')dnl
include(`policy/users')dnl
include(`policy/constraints')dnl
include(`policy/initial_sid_contexts')dnl
