// Python entry point so that `import fcos_core._C` loads the library and runs its op
// registrations. The module itself exposes nothing: the ops live under torch.ops.fcos.
#include <Python.h>

static struct PyModuleDef fcos_c_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&fcos_c_module); }
