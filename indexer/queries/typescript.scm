; inherits: ecma
; Tags for TypeScript (aider repomap conventions + our import / parent / context captures):
; those of ecma.scm (shared with JavaScript), plus TypeScript's own.

(class_declaration name: (type_identifier) @name.definition.class) @definition.class
(abstract_class_declaration name: (type_identifier) @name.definition.class) @definition.class
(interface_declaration name: (type_identifier) @name.definition.interface) @definition.interface
(type_alias_declaration name: (type_identifier) @name.definition.type) @definition.type
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(internal_module name: [(identifier) (nested_identifier)] @name.definition.module) @definition.module
(function_signature name: (identifier) @name.definition.function) @definition.function
(method_signature name: (property_identifier) @name.definition.method) @definition.method
(abstract_method_signature name: (property_identifier) @name.definition.method) @definition.method
(public_field_definition name: (property_identifier) @name.definition.field) @definition.field
(property_signature name: (property_identifier) @name.definition.field) @definition.field

(class_declaration name: (type_identifier) @parent.child
  (class_heritage (extends_clause value: (_) @parent.name)))
(abstract_class_declaration name: (type_identifier) @parent.child
  (class_heritage (extends_clause value: (_) @parent.name)))
(class_declaration name: (type_identifier) @parent.child
  (class_heritage (implements_clause [(type_identifier) (generic_type) (nested_type_identifier)] @parent.name)))
(abstract_class_declaration name: (type_identifier) @parent.child
  (class_heritage (implements_clause [(type_identifier) (generic_type) (nested_type_identifier)] @parent.name)))
(interface_declaration name: (type_identifier) @parent.child
  (extends_type_clause type: (_) @parent.name))

; == references and context ==

(type_identifier) @name.reference.type

(type_identifier) @context.type
[(public_field_definition) (property_signature)] @context.field
