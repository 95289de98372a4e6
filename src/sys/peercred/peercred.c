/*
 * Peer credentials of a connected unix socket (SO_PEERCRED): the uid, gid
 * and pid the kernel recorded when the client called connect(2).  This is
 * the only thing gotd believes about who is on the other end of gotd.sock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value
throw_errno(napi_env env, int err)
{
	char msg[128];

	strncpy(msg, "SO_PEERCRED: ", sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	strncat(msg, strerror(err), sizeof(msg) - strlen(msg) - 1);
	napi_throw_error(env, "ERR_PEERCRED", msg);
	return NULL;
}

static int
set_number(napi_env env, napi_value obj, const char *key, double value)
{
	napi_value v;

	if (napi_create_double(env, value, &v) != napi_ok)
		return -1;
	return napi_set_named_property(env, obj, key, v) == napi_ok ? 0 : -1;
}

/* peercred(fd) -> { uid, gid, pid } */
static napi_value
peercred(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], obj;
	int32_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
		return NULL;
	if (argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
	    fd < 0) {
		napi_throw_type_error(env, NULL, "peercred: fd must be a non-negative integer");
		return NULL;
	}
	memset(&cred, 0, sizeof(cred));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return throw_errno(env, errno);
	if (len != sizeof(cred))
		return throw_errno(env, EPROTO);
	if (napi_create_object(env, &obj) != napi_ok ||
	    set_number(env, obj, "uid", cred.uid) == -1 ||
	    set_number(env, obj, "gid", cred.gid) == -1 ||
	    set_number(env, obj, "pid", cred.pid) == -1)
		return NULL;
	return obj;
}

NAPI_MODULE_INIT()
{
	napi_value fn;

	if (napi_create_function(env, "peercred", NAPI_AUTO_LENGTH, peercred,
	    NULL, &fn) != napi_ok)
		return NULL;
	if (napi_set_named_property(env, exports, "peercred", fn) != napi_ok)
		return NULL;
	return exports;
}
