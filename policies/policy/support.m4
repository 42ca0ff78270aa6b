divert(-1)
# Support macros (as Xen's policy/support/*.spt).
#
# gen_context(user:role:type, level): a security context; the level is used
# only when the policy is built as MLS (-D enable_mls, with -M).
define(`gen_context', `$1`'ifdef(`enable_mls', `:$2')')
# gen_user(name, roles, level, range)
define(`gen_user', `user $1 roles { $2 }ifdef(`enable_mls', ` level $3 range $4');')
divert`'dnl
