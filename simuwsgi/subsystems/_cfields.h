/*
 * Attribute access for the C twins of simuwsgi.subsystems (_cmaster.c, _csignals.c).
 *
 * Every attribute a twin reads or writes is a `Field`. The hot ones are slots
 * (`__slots__`, or a C type's members: the kernel's `now` and `current`, a spool's
 * `limit`): for each of the first LAYOUTS classes a field is used on, its member
 * descriptor is checked once, and the field of an object of exactly such a class is
 * then read and written at its offset, as the descriptor does, without the attribute
 * look-up (a cron firing reads ~60 fields). Any other attribute, or object, goes
 * through getattr/setattr.
 *
 * A module declares its fields with FIELD_DECLARE(name) (a `Field f_<name>`) and
 * interns their names at its init with FIELD_INTERN(name).
 *
 * `record_fields` makes (or finds again) the fields dict of a trace record.
 */
#ifndef SIMUWSGI_CFIELDS_H
#define SIMUWSGI_CFIELDS_H

#include <Python.h>
#include <structmember.h>

/* Where a class keeps a field: its slot's offset, or -1 (getattr/setattr). */
typedef struct {
    PyTypeObject *type;   /* NULL: not yet seen */
    Py_ssize_t offset;
    int member;           /* the slot's member type: T_OBJECT_EX, or T_PYSSIZET (read
                           * by get_int only) */
} Layout;

/* the classes a field is read on: the loop's clients (two), a process's (master,
 * worker, mule, spooler) */
#define LAYOUTS 4

typedef struct {
    const char *text;
    PyObject *name;       /* interned at the module's init */
    Layout layouts[LAYOUTS];
} Field;

#define FIELD_DECLARE(f) static Field f_##f = {#f, NULL, {{NULL, -1, 0}}};
#define FIELD_INTERN(f) \
    if ((f_##f.name = PyUnicode_InternFromString(f_##f.text)) == NULL) return NULL;

/* Where `type` keeps `f` (into `layout`): checked once per class. A class with its own
 * __getattr__/__setattr__ (a worker's thread, which reads and writes its process's
 * fields) is always asked. */
static inline void
lay_out(Layout *layout, Field *f, PyTypeObject *type)
{
    layout->type = (PyTypeObject *)Py_NewRef(type);  /* kept alive from now on */
    layout->offset = -1;
    if (type->tp_getattro != PyObject_GenericGetAttr
            || type->tp_setattro != PyObject_GenericSetAttr) {
        return;
    }
    PyObject *descr = _PyType_Lookup(type, f->name);  /* borrowed */
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if ((member->type == T_OBJECT_EX || member->type == T_PYSSIZET)
                && !(member->flags & READONLY)) {
            layout->offset = member->offset;
            layout->member = member->type;
        }
    }
}

/* The layout of obj's class for `f`, NULL past the first LAYOUTS classes. */
static inline Layout *
layout_of(Field *f, PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    for (int i = 0; i < LAYOUTS; i++) {
        Layout *layout = &f->layouts[i];
        if (layout->type == NULL) lay_out(layout, f, type);
        if (layout->type == type) return layout;
    }
    return NULL;
}

/* The address of obj's object slot for `f`, or NULL: getattr/setattr. */
static inline PyObject **
slot_of(Field *f, PyObject *obj)
{
    Layout *layout = layout_of(f, obj);
    if (layout == NULL || layout->offset < 0 || layout->member != T_OBJECT_EX) return NULL;
    return (PyObject **)((char *)obj + layout->offset);
}

/* obj.<f> (a new reference, NULL on error). */
static inline PyObject *
get(Field *f, PyObject *obj)
{
    PyObject **slot = slot_of(f, obj);
    if (slot != NULL && *slot != NULL) return Py_NewRef(*slot);
    return PyObject_GetAttr(obj, f->name);  /* (an empty slot raises AttributeError) */
}

/* obj.<f> = value: 0, -1 on error. */
static inline int
set(Field *f, PyObject *obj, PyObject *value)
{
    PyObject **slot = slot_of(f, obj);
    if (slot == NULL) return PyObject_SetAttr(obj, f->name, value);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

/* The truth of obj.<f>: 1, 0, -1 on error. */
static inline int
get_true(Field *f, PyObject *obj)
{
    PyObject *value = get(f, obj);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* obj.<f> as a double when it is an exact float: 1 (into *out), 0 not a float, -1. */
static inline int
get_float(Field *f, PyObject *obj, double *out)
{
    PyObject *value = get(f, obj);
    if (value == NULL) return -1;
    int is_float = PyFloat_CheckExact(value);
    if (is_float) *out = PyFloat_AS_DOUBLE(value);
    Py_DECREF(value);
    return is_float;
}

/* `value` as a long long when it is an exact int in range: 1, 0 not one, -1. */
static inline int
as_int(PyObject *value, long long *out)
{
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    return overflow ? 0 : (*out == -1 && PyErr_Occurred()) ? -1 : 1;
}

/* obj.<f> as a long long when it is an exact int in range: 1, 0 not one, -1. */
static inline int
get_int(Field *f, PyObject *obj, long long *out)
{
    Layout *layout = layout_of(f, obj);
    if (layout != NULL && layout->offset >= 0 && layout->member == T_PYSSIZET) {
        *out = *(Py_ssize_t *)((char *)obj + layout->offset);
        return 1;
    }
    PyObject *value = get(f, obj);
    if (value == NULL) return -1;
    int rc = as_int(value, out);
    Py_DECREF(value);
    return rc;
}

/* -- records' fields ------------------------------------------------------------------ */

/* The last fields dict made for a record of a kind (kinds by identity: the twins'
 * interned names). */
typedef struct {
    PyObject *kind, *fields;
} FieldsMemo;

#define FIELDS_MEMOS 8
static FieldsMemo fields_memo[FIELDS_MEMOS];

/* A record's fields, {key1: value1[, key2: value2]} (key2 NULL: one item): a new
 * reference, NULL on error. A record of a kind with the very values (by identity) of the
 * last one of that kind gets the same dict, found unchanged: a cron or a timer makes the
 * same few records again and again, and making a dict for each and freeing it when the
 * trace spills cost a tenth of a cron firing. (A record's fields are read-only: queries hand
 * them out as the trace keeps them.) */
static inline PyObject *
record_fields(PyObject *kind, PyObject *key1, PyObject *value1, PyObject *key2,
              PyObject *value2)
{
    FieldsMemo *memo = NULL;
    for (int i = 0; memo == NULL && i < FIELDS_MEMOS; i++) {
        if (fields_memo[i].kind == kind || fields_memo[i].kind == NULL) memo = &fields_memo[i];
    }
    PyObject *fields = memo != NULL ? memo->fields : NULL;
    if (fields != NULL && PyDict_GET_SIZE(fields) == (key2 == NULL ? 1 : 2)
            && PyDict_GetItemWithError(fields, key1) == value1
            && (key2 == NULL || PyDict_GetItemWithError(fields, key2) == value2)) {
        return Py_NewRef(fields);
    }
    if (PyErr_Occurred()) return NULL;
    fields = PyDict_New();
    if (fields == NULL || PyDict_SetItem(fields, key1, value1) < 0
            || (key2 != NULL && PyDict_SetItem(fields, key2, value2) < 0)) {
        Py_XDECREF(fields);
        return NULL;
    }
    if (memo != NULL) {
        if (memo->kind == NULL) memo->kind = Py_NewRef(kind);
        Py_XSETREF(memo->fields, Py_NewRef(fields));
    }
    return fields;
}

#endif
