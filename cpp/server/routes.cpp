#include "server/routes.h"

namespace gridexp {

void install_routes(httplib::Server& server, ServerContext& context) {
  install_request_gate(server, context);
  install_read_api(server, context);
  install_worker_protocol(server, context);
  install_action_routes(server, context);
  install_dashboard_routes(server, context);
}

}  // namespace gridexp
