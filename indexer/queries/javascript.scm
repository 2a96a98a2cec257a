; inherits: ecma
; Tags for JavaScript (aider repomap conventions + our import / parent / context captures):
; those of ecma.scm, plus the patterns that do not fit the TypeScript grammar (there a class
; name is a type_identifier and a field a public_field_definition).

(class_declaration name: (identifier) @name.definition.class) @definition.class
(class name: (identifier) @name.definition.class) @definition.class
(field_definition property: (property_identifier) @name.definition.field) @definition.field

(class_declaration name: (identifier) @parent.child
  (class_heritage [(identifier) (member_expression)] @parent.name))

; == references and context ==

(field_definition) @context.field
