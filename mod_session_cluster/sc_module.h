/* sc_module.h - the module record, shared by every file of the module.
 * Each .c file that logs also says APLOG_USE_MODULE(session_cluster), so
 * "LogLevel session_cluster:debug" reaches all of them. */
#ifndef SC_MODULE_H
#define SC_MODULE_H

#include <httpd.h>
#include <http_config.h>

extern module AP_MODULE_DECLARE_DATA session_cluster_module;

#define SC_HANDLER "cluster-manager"

#endif
