; Tags for Java (aider repomap conventions + our import / parent / context captures).

(class_declaration name: (identifier) @name.definition.class) @definition.class
(record_declaration name: (identifier) @name.definition.class) @definition.class
(interface_declaration name: (identifier) @name.definition.interface) @definition.interface
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(annotation_type_declaration name: (identifier) @name.definition.interface) @definition.interface
(method_declaration name: (identifier) @name.definition.method) @definition.method
(constructor_declaration name: (identifier) @name.definition.method) @definition.method
(field_declaration declarator: (variable_declarator name: (identifier) @name.definition.field)) @definition.field
(constant_declaration declarator: (variable_declarator name: (identifier) @name.definition.field)) @definition.field

; import a.b.C -> module "a.b", names ["C"]; import a.b.* -> module "a.b", names ["*"].
(import_declaration (scoped_identifier scope: (_) @import.module name: (identifier) @import.name)) @import
(import_declaration [(scoped_identifier) (identifier)] @import.module (asterisk) @import.name) @import

(class_declaration name: (identifier) @parent.child
  superclass: (superclass (_) @parent.name))
(class_declaration name: (identifier) @parent.child
  interfaces: (super_interfaces (type_list (_) @parent.name)))
(record_declaration name: (identifier) @parent.child
  interfaces: (super_interfaces (type_list (_) @parent.name)))
(enum_declaration name: (identifier) @parent.child
  interfaces: (super_interfaces (type_list (_) @parent.name)))
(interface_declaration name: (identifier) @parent.child
  (extends_interfaces (type_list (_) @parent.name)))

; == references and context ==

(method_invocation name: (identifier) @name.reference.call)
(object_creation_expression type: [(type_identifier) @name.reference.class
                                   (generic_type (type_identifier) @name.reference.class)])
(field_access field: (identifier) @name.reference.attribute)
(type_identifier) @name.reference.type

(identifier) @context.identifier
(type_identifier) @context.type
(string_literal) @context.string
[(field_declaration) (constant_declaration)] @context.field
