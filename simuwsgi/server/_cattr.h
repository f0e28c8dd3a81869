/*
 * Attribute access for the C twins of the request path (_creq.c, _cwsgi.c): the
 * look-up a class's layout makes unnecessary, remembered per class.
 *
 * The objects a request touches (the instance, its workers, the request, the kernel)
 * are plain Python objects, and each `getattr` from C walks the class's MRO for a
 * descriptor before it reads the instance's dict (~200 reads and writes a request).
 * An `Attr` remembers, for the last ATTR_LAYOUTS classes it was used on, what that
 * walk found, while the class is unchanged (its version tag, which CPython renews on
 * any change to the class or a base):
 *   - a slot (`__slots__`, a C type's member): read at its offset as the member
 *     descriptor reads it (an object, a Py_ssize_t, a bool), an object one written there;
 *   - no data descriptor: the instance's own dict, then the class's plain value (a
 *     default such as `Request.done`; a method is bound by getattr);
 *   - anything else (a property, a method, a class with its own __getattr__ or
 *     __setattr__, a class without a version tag): getattr/setattr.
 * What is read is always the object's current state: only the class's layout is
 * remembered, so nothing goes stale when a simulation reloads, respawns or ends.
 * A class an Attr saw stays referenced by it (a few per name, module-level classes).
 *
 * A module declares an Attr with ATTR_DECLARE(name) (`Attr a_<name>`) and interns its
 * name at init with ATTR_INTERN(name).
 */
#ifndef SIMUWSGI_CATTR_H
#define SIMUWSGI_CATTR_H

#include <Python.h>
#include <structmember.h>

enum { ATTR_ASK, ATTR_DICT, ATTR_SLOT };

typedef struct {
    PyTypeObject *type;   /* NULL: not yet seen */
    unsigned int version; /* the class's version tag when it was looked at */
    int how;              /* ATTR_ASK, ATTR_DICT or ATTR_SLOT */
    Py_ssize_t offset;    /* ATTR_SLOT: where the member is */
    int member;           /* ATTR_SLOT: its type (T_OBJECT_EX, T_OBJECT, T_PYSSIZET, T_BOOL) */
    PyObject *fallback;   /* ATTR_DICT: the class's plain value or NULL (borrowed: the
                             class holds it while its version stands) */
} AttrLayout;

#define ATTR_LAYOUTS 4  /* the classes a name is used on (`kernel`: the simulation, the instance,
                         * the clock) */

typedef struct {
    const char *text;
    PyObject *name;
    AttrLayout layouts[ATTR_LAYOUTS];
} Attr;

#define ATTR_DECLARE(n) static Attr a_##n = {#n, NULL, {{NULL, 0, ATTR_ASK, 0, 0, NULL}}};
#define ATTR_INTERN(n) \
    if ((a_##n.name = PyUnicode_InternFromString(a_##n.text)) == NULL) return NULL;

static inline int
attr_current(PyTypeObject *type, unsigned int version)
{
    return (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) && type->tp_version_tag == version;
}

/* What `type`'s layout says of `a` (into `layout`). */
static void
attr_study(Attr *a, AttrLayout *layout, PyTypeObject *type)
{
    if (layout->type != type) {
        Py_XSETREF(layout->type, (PyTypeObject *)Py_NewRef(type));
    }
    layout->how = ATTR_ASK;
    layout->fallback = NULL;
    if (type->tp_getattro != PyObject_GenericGetAttr
            || type->tp_setattro != PyObject_GenericSetAttr) {
        return;
    }
    PyObject *descr = _PyType_Lookup(type, a->name);  /* borrowed; gives a version tag */
    if (!(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        return;
    }
    layout->version = type->tp_version_tag;
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        int kind = member->type;
        if ((kind == T_OBJECT_EX || kind == T_OBJECT || kind == T_PYSSIZET || kind == T_BOOL)
                && member->flags == 0) {  /* neither read-only nor audited */
            layout->how = ATTR_SLOT;
            layout->offset = member->offset;
            layout->member = kind;
        }
        return;
    }
    if ((descr != NULL && Py_TYPE(descr)->tp_descr_set != NULL) || type->tp_dictoffset == 0) {
        return;  /* a data descriptor (a property), or no instance dict */
    }
    layout->how = ATTR_DICT;
    /* a method or another descriptor is bound by getattr when the dict has no value */
    layout->fallback = descr != NULL && Py_TYPE(descr)->tp_descr_get != NULL ? NULL : descr;
}

/* The layout of obj's class for `a`, studied now if its class is new or changed. */
static inline AttrLayout *
attr_layout(Attr *a, PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    AttrLayout *layout = a->layouts;
    for (int i = 0; i < ATTR_LAYOUTS; i++, layout++) {
        if (layout->type == type) {
            if (layout->how != ATTR_ASK && !attr_current(type, layout->version)) {
                attr_study(a, layout, type);
            }
            return layout;
        }
        if (layout->type == NULL) {
            break;
        }
    }
    if (layout == a->layouts + ATTR_LAYOUTS) {  /* all taken: the last one is replaced */
        layout--;
    }
    attr_study(a, layout, type);
    return layout;
}

/* obj's own dict (borrowed), or NULL (no error) when it has none. */
static inline PyObject *
attr_dict(PyObject *obj)
{
    PyObject **where = _PyObject_GetDictPtr(obj);
    return where == NULL ? NULL : *where;
}

/* obj.<a> as its class's layout finds it (a new reference), or NULL: an error, or
 * none set when getattr must be asked. */
static inline PyObject *
attr_known(Attr *a, PyObject *obj)
{
    AttrLayout *layout = attr_layout(a, obj);
    if (layout->how == ATTR_SLOT) {  /* as PyMember_GetOne reads it */
        char *at = (char *)obj + layout->offset;
        switch (layout->member) {
        case T_PYSSIZET: return PyLong_FromSsize_t(*(Py_ssize_t *)at);
        case T_BOOL: return PyBool_FromLong(*at);
        case T_OBJECT: return Py_NewRef(*(PyObject **)at != NULL ? *(PyObject **)at : Py_None);
        default: return Py_XNewRef(*(PyObject **)at);  /* T_OBJECT_EX: unset raises */
        }
    }
    if (layout->how == ATTR_DICT) {
        PyObject *dict = attr_dict(obj);
        if (dict != NULL) {
            PyObject *value = PyDict_GetItemWithError(dict, a->name);
            return Py_XNewRef(value != NULL || PyErr_Occurred() ? value : layout->fallback);
        }
    }
    return NULL;
}

/* obj.<a>: a new reference, NULL on error. */
static inline PyObject *
attr_get(Attr *a, PyObject *obj)
{
    PyObject *value = attr_known(a, obj);
    if (value != NULL || PyErr_Occurred()) return value;
    return PyObject_GetAttr(obj, a->name);  /* (its error when there is no such value) */
}

/* obj.<a> into *out when it has one: 1, 0 when it has none (*out NULL), -1 error. */
static inline int
attr_lookup(Attr *a, PyObject *obj, PyObject **out)
{
    if ((*out = attr_known(a, obj)) != NULL) return 1;
    if (PyErr_Occurred()) return -1;
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, a->name, out);
#else
    return _PyObject_LookupAttr(obj, a->name, out);
#endif
}

/* obj.<a> = value: 0, -1 on error. */
static inline int
attr_set(Attr *a, PyObject *obj, PyObject *value)
{
    AttrLayout *layout = attr_layout(a, obj);
    if (layout->how == ATTR_SLOT
            && (layout->member == T_OBJECT_EX || layout->member == T_OBJECT)) {
        Py_XSETREF(*(PyObject **)((char *)obj + layout->offset), Py_NewRef(value));
        return 0;
    }
    if (layout->how == ATTR_DICT) {
        PyObject *dict = attr_dict(obj);
        if (dict != NULL) return PyDict_SetItem(dict, a->name, value);
    }
    return PyObject_SetAttr(obj, a->name, value);
}

#endif
